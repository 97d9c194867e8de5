//! Severity classification: S1, S2 or S3, with the reasons (see the triage issue).

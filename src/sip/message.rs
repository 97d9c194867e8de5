pub struct Uri;
impl Uri { pub fn parse(_s: &str) -> Option<Uri> { Some(Uri) } }

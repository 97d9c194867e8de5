-- The language the customer's callers are greeted in ("fr" or "en"); NULL: French, the guide's
-- first language. A 611 call skips the language choice and uses it.
ALTER TABLE accounts ADD COLUMN language TEXT;

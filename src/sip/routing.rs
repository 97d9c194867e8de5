pub fn normalize_number(_s: &str) -> Option<String> { Some(String::new()) }

//! The dashboard served by the same binary (filled in by the web issue).

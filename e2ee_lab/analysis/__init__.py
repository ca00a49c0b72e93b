"""Analysis: results turned into tables and figures (``plots`` holds one function per figure)."""

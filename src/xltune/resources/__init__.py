"""Data files shipped with xltune (resource tables, language-code maps); each names its source in its header."""

"""Models: backbone loading, heads, prompts."""

"""Data: task registry, readers, few-shot sampling, encoding."""

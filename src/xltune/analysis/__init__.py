"""Analysis of stored runs: aggregation, significance, resource grouping, tokenization statistics."""

"""Analysis of stored runs: aggregation, significance, resource grouping, tokenization statistics."""

# paired-bootstrap resamples (report, claims); here so the CLI can show the default without numpy/scipy
N_RESAMPLES = 1000

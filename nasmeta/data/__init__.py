"""Tasks, data sources, landmarkers and tabular benchmarks."""

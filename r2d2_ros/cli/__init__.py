"""Command-line entry points: r2d2-extract, r2d2-train, r2d2-eval."""

"""sfn-mlops operator CLI and embedded local runtime (not part of the Lambda layer)."""

"""Local stand-ins for SageMaker containers, run as subprocesses by the local job runner."""

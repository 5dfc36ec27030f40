"""The embedded local runtime: the SAM application on moto, with state machines, Lambda and SageMaker jobs in-process."""

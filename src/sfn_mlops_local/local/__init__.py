"""The embedded local runtime: the SAM application on moto, with state machines, Lambda and jobs in-process."""

"""sfn-mlops domain package: shared by the Lambda functions (as a layer), the CLI and the local runtime.

Depends only on boto3, aws-lambda-powertools and pydantic.
"""

__version__ = "0.1.0"

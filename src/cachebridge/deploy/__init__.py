"""Deployment: the CloudFormation template, the Lambda package and the stack."""

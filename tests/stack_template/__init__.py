"""Tests of the CloudFormation template's resource families."""

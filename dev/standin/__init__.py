"""Local stand-in for the AWS AppSync GraphQL endpoint (IAM / SigV4 auth).

Started through dev/appsync_standin.py; the behaviour it promises (endpoints, control
API, fault rules, READY line, error shapes) is specified in dev/standin/README.md.
"""

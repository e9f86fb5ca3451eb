"""Development tooling, not part of a deployment: `local_stack` starts a local Ray head and `airflow standalone`
(`make airflow`); the test suite uses the same classes.
"""

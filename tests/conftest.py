"""Test set-up shared by every suite. Fixture modules per real part live in tests/fixtures/."""

import os

# Nothing in a test may wait on the GCE metadata server.
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:9"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.pg",
    "tests.fixtures.vertex",  # sets GRPC_DEFAULT_SSL_ROOTS_FILE_PATH at import: before any channel
    "tests.fixtures.docker",
    "tests.fixtures.jupyter",
    "tests.fixtures.aws",  # moto_server and the SageMaker edge fake
    "tests.fixtures.kubernetes",  # the fake Kubernetes API server
    "tests.fixtures.billing",  # the fake Cloud Billing Catalog API (after vertex: its CA)
]

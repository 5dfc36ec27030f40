"""How a command finds the local service that owns its state folder, and what it says when it cannot."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def other_service() -> Iterator[dict[str, Any]]:
    """An endpoint that answers like a local service, owning whatever folder the test says."""
    answer: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    answer["endpoint"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield answer
    server.shutdown()
    server.server_close()


def test_a_stale_service_file_pointing_at_another_folders_service_is_not_used(
    tmp_path: Path, other_service: dict[str, Any]
) -> None:
    from sfn_mlops_local.local import client
    from sfn_mlops_local.local.state import ServiceInfo

    # Given a service.json left by a killed service whose port another folder's service now uses
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    ServiceInfo(endpoint=other_service["endpoint"], pid=111, state_dir=str(mine)).write(mine)
    other_service.update({"running": True, "pid": 222, "state_dir": str(theirs)})
    # When a command looks for the service of its own folder, Then it does not take the other one
    assert client.running(mine) is None
    # And when the endpoint does belong to its folder's service, it is used
    other_service.update({"pid": 111, "state_dir": str(mine)})
    found = client.running(mine)
    assert found is not None and found.endpoint == other_service["endpoint"]


def test_a_state_folder_that_cannot_be_used_is_one_line_naming_it(tmp_path: Path) -> None:
    from sfn_mlops_local.local import client

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    from sfn_mlops_local.local.state import StateFormatError

    with pytest.raises(StateFormatError, match=r".*file is not a folder: set MLOPS_LOCAL_STATE"):
        client.start(not_a_folder)


def test_stopping_a_folder_without_a_service_says_there_was_none(tmp_path: Path) -> None:
    from sfn_mlops_local.local import client

    assert client.stop(tmp_path) is None


def test_a_cli_client_of_the_local_service_does_not_load_the_template_tooling() -> None:
    """Read-only commands must start fast: building the local service's target (with its batch schedule wiring)
    must not import cfn-lint, which takes about a second (a regression once made `mlops runs` take 1.7 s)."""
    import subprocess
    import sys

    # Given a fresh interpreter, When the CLI is imported and a local target's schedule wiring is built
    probe = (
        "import sys; import sfn_mlops_local.cli; from sfn_mlops_local.operations import Target; "
        "Target.local_batch_schedule('sfn-mlops-local'); "
        "print(sorted(m for m in sys.modules if m.startswith('cfnlint')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    # Then nothing of cfn-lint was imported
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_commands_in_one_process_load_botocore_data_once_and_reach_their_own_service() -> None:
    from sfn_mlops_local.local import client
    from sfn_mlops_local.local.state import ServiceInfo

    # Given one command's client of a service (the process has loaded DynamoDB's model and the endpoint data)
    first = client.client_factory(ServiceInfo("http://127.0.0.1:45001", 1, "/a"))("dynamodb")
    loader = client._shared_session()._session.get_component("data_loader")
    files: list[str] = []
    original = loader.file_loader.load_file
    loader.file_loader.load_file = lambda path: files.append(path) or original(path)
    try:
        # When a later command in the same process (a notebook, a test) makes its clients, from threads at once
        made: list[Any] = []
        threads = [
            threading.Thread(
                target=lambda: made.append(
                    client.client_factory(ServiceInfo("http://127.0.0.1:45002", 2, "/b"))("dynamodb")
                )
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        loader.file_loader.load_file = original
    # Then they come from the first command's session (one loader), no botocore data file is read again, and each
    # client reaches its own command's service
    assert {id(c._loader) for c in made} == {id(first._loader)}
    assert files == []
    assert len(made) == 4 and {c.meta.endpoint_url for c in made} == {"http://127.0.0.1:45002"}
    assert first.meta.endpoint_url == "http://127.0.0.1:45001"

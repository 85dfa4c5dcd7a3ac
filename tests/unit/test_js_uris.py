"""The JS client's URIs (clients/js/src/uris.js) are the gateway's: ``components.uris.JS_CLIENT``.

Node imports uris.js and prints its exports as JSON; the table must equal ``JS_CLIENT`` name for
name, and each entry must be one of ``components.uris``' own constants, so that a URI is defined
once on the Python side too. (clients/js/test/unit/uris.test.mjs checks that no other JS module
spells a URI out.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from components import uris

REPO = Path(__file__).resolve().parents[2]
URIS_JS = REPO / "clients" / "js" / "src" / "uris.js"
NODE_TIMEOUT = 30
PRINT_EXPORTS = "const m = await import(process.argv[1]); console.log(JSON.stringify(m));"


def js_exports() -> dict[str, str]:
    node = shutil.which("node")
    assert node is not None, "Node.js 20+ is needed to read the JS client's URIs (apt-get install nodejs)"
    proc = subprocess.run(
        [node, "--input-type=module", "-e", PRINT_EXPORTS, URIS_JS.as_uri()],
        capture_output=True, text=True, timeout=NODE_TIMEOUT, check=False)
    assert proc.returncode == 0, f"node could not import {URIS_JS}:\n{proc.stderr}"
    exports = json.loads(proc.stdout)
    assert isinstance(exports, dict)
    return exports


def python_constants() -> dict[str, str]:
    return {name: value for name, value in vars(uris).items() if name.isupper() and isinstance(value, str)}


def test_uris_js_is_the_python_table() -> None:
    assert js_exports() == uris.JS_CLIENT


def test_every_uri_of_the_js_client_is_a_constant_of_the_python_module() -> None:
    constants = python_constants()
    assert uris.JS_CLIENT, "JS_CLIENT is empty"
    not_constants = {name: value for name, value in uris.JS_CLIENT.items() if constants.get(name) != value}
    assert not_constants == {}, "JS_CLIENT entries that are not components.uris constants of that name and value"
    assert set(uris.JS_CLIENT.values()) <= set(constants.values())

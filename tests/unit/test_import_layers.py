"""The layers of src/pulse, as docs/architecture.md#layers draws them, kept by a test.

Each rule names a group of modules and the pulse modules (or third-party packages) they
must not import. An import anywhere in the module counts, also inside a function or
under ``if TYPE_CHECKING:``, so a forbidden dependency cannot hide.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Everything above the pure cores: what they must never reach for.
SHELL = (
    "pulse.daemon",
    "pulse.comms",
    "pulse.control",
    "pulse.cli",
    "pulse.reload",
    "pulse.supervision",
    "pulse.instance",
    "pulse.metrics",
    "pulse.notify",
    "pulse.respawn",
)
RUNTIME = (
    *SHELL,
    "pulse.transport",
    "pulse.resources",
    "pulse.failover.manager",
    "pulse.plugin.host",
    "pulse.plugin.bus",
)

PURE_FAILOVER = (
    "pulse.failover.policy",
    "pulse.failover.actions",
    "pulse.failover.report",
    "pulse.failover.exchange",
    "pulse.failover.ipfail",
    "pulse.failover.heal",
    "pulse.failover.operator",
)

#: (modules the rule is about, what they must not import, why)
RULES: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (
        ("pulse.wire",),
        ("pulse.protocol", "pulse.failover", "pulse.plugin", *RUNTIME, "trio"),
        "the wire format is a leaf: bytes in, messages out",
    ),
    (
        ("pulse.protocol",),
        ("pulse.failover", "pulse.plugin", *RUNTIME, "trio"),
        "the protocol engine is sans-IO and knows nothing above it",
    ),
    (
        PURE_FAILOVER,
        ("pulse.protocol.engine", "pulse.plugin", *RUNTIME, "trio"),
        "the failover policy does no I/O and has no clock",
    ),
    (
        ("pulse.plugin.api", "pulse.plugin.settings"),
        ("pulse.protocol", "pulse.failover", *RUNTIME, "trio"),
        "the plugin contract imports no runtime module",
    ),
    (
        ("pulse.config",),
        ("pulse.protocol", "pulse.failover", "pulse.plugin", *SHELL, "pulse.transport", "trio"),
        "configuration is data: loaded before anything runs",
    ),
    (
        ("pulse.resources", "pulse.transport"),
        ("pulse.protocol.engine", "pulse.failover", "pulse.plugin.host", *SHELL),
        "resource agents and links are used by the layers above, never the reverse",
    ),
    (
        ("pulse.failover.manager", "pulse.plugin.host", "pulse.plugin.bus"),
        ("pulse.daemon", "pulse.comms", "pulse.control", "pulse.cli"),
        "the resource manager and the plugin host are wired by the daemon, not the reverse",
    ),
]

#: The lab ships separately; the product never imports it or a test framework.
NEVER = ("pytest", "pyroute2", "pulse_lab", "pulse.lab", "pulse.demo", "hypothesis")

#: The one allowed crossing: config checks use the floating IP's pure argument parser
#: (pulse.resources.ipaddr.parse_ip_argument), so `pulse check` refuses what a takeover
#: would refuse.
EXCEPTIONS = {("pulse.config.checks", "pulse.resources.ipaddr")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    name = ".".join(parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = {_module_name(p): p for p in sorted((SRC / "pulse").rglob("*.py"))}


def _violations(rule_modules: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for name, path in MODULES.items():
        if not _within(name, rule_modules):
            continue
        for imported in sorted(_imports(path)):
            if (name, imported) in EXCEPTIONS or any(
                (name, e) in EXCEPTIONS for e in forbidden if _within(imported, (e,))
            ):
                continue
            if _within(imported, forbidden) and not _within(imported, rule_modules):
                bad.append(f"{name} imports {imported}")
    return bad


@pytest.mark.parametrize(("modules", "forbidden", "why"), RULES, ids=[r[2] for r in RULES])
def test_layer_imports_only_what_is_below_it(
    modules: tuple[str, ...], forbidden: tuple[str, ...], why: str
) -> None:
    assert _violations(modules, forbidden) == [], why


def test_the_product_never_imports_the_lab_or_a_test_framework() -> None:
    bad = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        for imported in sorted(_imports(path))
        if _within(imported, NEVER)
    ]
    assert bad == []


def test_a_forbidden_import_is_caught(tmp_path: Path) -> None:
    # The checker itself: a protocol module that reached for the resource manager.
    module = tmp_path / "engine.py"
    module.write_text("from pulse.failover.manager import ResourceManager\n")
    assert "pulse.failover.manager" in _imports(module)
    assert _within("pulse.failover.manager", RULES[1][1])


def test_every_rule_names_modules_that_exist() -> None:
    for modules, _, why in RULES:
        assert any(_within(name, modules) for name in MODULES), why

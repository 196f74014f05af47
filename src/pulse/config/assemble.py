"""One Config from what a reader found: the derived defaults and the cluster-wide checks
both formats share (used by :mod:`pulse.config.legacy` and :mod:`pulse.config.toml`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pulse.config.checks import (
    Locator,
    RawTiming,
    diagnostic,
    resolve_timing,
    validate_cluster,
)
from pulse.config.hacf import HaCf
from pulse.config.model import (
    AuthKeys,
    AutoFailback,
    Config,
    Logging,
    ResourceGroup,
    Source,
)
from pulse.errors import Diagnostic


def build_config(
    cf: HaCf,
    *,
    auth: AuthKeys | None,
    groups: list[ResourceGroup],
    loc: Locator,
    local: str,
    origin: str,
    resource_dir: str | None,
    plugins: Mapping[str, Mapping[str, object]] | None = None,
) -> tuple[Config | None, list[Diagnostic]]:
    """Derived defaults, global validation and the final :class:`Config` (both formats)."""
    diags: list[Diagnostic] = []
    raw = RawTiming(
        keepalive=cf.raw_timing.get("keepalive"),
        deadtime=cf.raw_timing.get("deadtime"),
        warntime=cf.raw_timing.get("warntime"),
        initdead=cf.raw_timing.get("initdead"),
        deadping=cf.raw_timing.get("deadping"),
    )
    timing, tdiags = resolve_timing(raw, loc)
    diags.extend(tdiags)

    # Heartbeat writes derived values back as parameters (docs/heartbeat.md#validation).
    params = dict(cf.parameters)
    for name in ("warntime", "initdead", "deadping"):
        if name not in params:
            params[name] = f"{getattr(timing, name)}ms"
    params.setdefault("udpport", str(cf.udpport))

    auto_failback = cf.auto_failback
    if auto_failback is None:
        auto_failback = AutoFailback.LEGACY
        if loc.toml:
            msg = (
                "cluster.auto_failback not set: Heartbeat's deprecated 'legacy' mode selected; "
                'set auto_failback = "on" or "off"'
            )
        else:
            msg = (
                "Deprecated 'legacy' auto_failback option selected: no auto_failback "
                "directive; add `auto_failback on` or `auto_failback off`"
            )
        diags.append(diagnostic(Source(loc.file, 0), msg, warning=True))
    logging, ldiags = resolve_logging(cf, loc)
    diags.extend(ldiags)

    # Without usable keys there is no Config, but every other check still runs
    # (against a placeholder key set) so that one pass reports every error.
    config = Config(
        nodes=tuple(cf.nodes),
        media=tuple(cf.media),
        auth=auth if auth is not None else AuthKeys(outbound=0, keys=()),
        timing=timing,
        groups=tuple(groups),
        auto_failback=auto_failback,
        udpport=cf.udpport,
        baud=cf.baud,
        cluster=cf.cluster,
        hopfudge=cf.hopfudge,
        logging=logging,
        msgfmt=cf.msgfmt,
        hbgenmethod=cf.hbgenmethod,
        max_rexmit_delay=cf.max_rexmit_delay,
        watchdog=cf.watchdog,
        stonith=tuple(cf.stonith),
        respawn=tuple(cf.respawn),
        ipfail=cf.ipfail or any(r.is_ipfail for r in cf.respawn),
        env=tuple(cf.env),
        parameters=params,
        plugins=dict(plugins or {}),
        origin=origin,
        resource_dir=resource_dir,
    )
    diags.extend(validate_cluster(config, local, loc))
    return (config if auth is not None else None), diags


def resolve_logging(cf: HaCf, loc: Locator) -> tuple[Logging, list[Diagnostic]]:
    """Heartbeat's check_logd_usage: no log destination at all means use_logd."""
    diags: list[Diagnostic] = []
    use_logd = cf.use_logd
    if cf.logfile is None and cf.debugfile is None and cf.logfacility is None:
        if use_logd is False:
            diags.append(
                diagnostic(
                    loc.where("use_logd"),
                    "use_logd: no logfile, debugfile or logfacility given and use_logd is off: "
                    "nowhere to log",
                )
            )
        use_logd = True
    return (
        Logging(
            logfile=cf.logfile,
            debugfile=cf.debugfile,
            logfacility=cf.logfacility,
            debug=cf.debug,
            syslogmsgfmt=cf.syslogmsgfmt,
            use_logd=bool(use_logd),
        ),
        diags,
    )


__all__ = ["build_config", "resolve_logging"]

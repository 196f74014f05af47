from __future__ import annotations

from pulse.cli.main import main

raise SystemExit(main())

"""Entry point of ``python -m devhost`` (see devhost.server)."""

from devhost.server import main

raise SystemExit(main())

from ..cli.lab import main

raise SystemExit(main())

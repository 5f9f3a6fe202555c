from synkit.cli import main

raise SystemExit(main())

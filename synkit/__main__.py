from synkit.study.cli import main

raise SystemExit(main())

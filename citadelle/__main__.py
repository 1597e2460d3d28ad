from citadelle.cli import main

raise SystemExit(main())

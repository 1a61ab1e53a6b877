from speechdecode.cli import main

raise SystemExit(main())

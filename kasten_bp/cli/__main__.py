from kasten_bp.cli import main

main()

"""Operations tooling: the `watercooler` command line, the process supervisor, the seeders
and the local infrastructure. No service imports it; it may import anything."""

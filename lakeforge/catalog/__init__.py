"""The governed catalog: securables, privileges and the one access function."""

"""Small shared utilities: devices, precision, seeding, atomic files."""

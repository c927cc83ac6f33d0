"""The embedded environment: moto and a real HSDS on loopback play AWS; the template's job definitions
run as local processes or containers."""

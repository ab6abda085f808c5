"""The threat-intelligence exchange: share campaigns without sharing customers (docs/intel.md).

``collect`` (attacker-specific attributes of each campaign, from the member's own log) →
``keys`` (keyed hashes and keyed MinHash sketches, epoch-rotated group keys) → ``export``
(a STIX 2.1 bundle, TLP 2.0, MITRE ATLAS) → ``sign`` (Ed25519 over RFC 8785 JSON) → … →
``sign.verify`` → ``index`` (O(1) look-ups) → ``match`` (trust policy from ``trust``, evidence,
sightings).
``rules`` (behaviour rules over signals), ``pattern`` (the indicator pattern language),
``markings`` (TLP 2.0, ATLAS), ``files`` (what the CLI runs); ``taxii`` + ``taxii_store`` (a
TAXII 2.1 server) and ``taxii_client`` (push/pull).
"""

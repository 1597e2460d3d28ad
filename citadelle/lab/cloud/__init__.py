"""The loopback OpenStack lab: Keystone, Barbican (PKCS#11 on SoftHSM2), Neutron and Cinder APIs."""

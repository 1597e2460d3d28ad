"""Policy corpus (compliant): providers that verify every endpoint's certificate."""

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import yaml

provider = openstack.Provider(
    "openstack",
    auth_url="https://identity.fr-par-1.snc.ovhcloud.com/v3",
    region="fr-par-1",
    insecure=False,
    cacert_file="/etc/ssl/certs/ca-certificates.crt",
    endpoint_overrides={"network": "https://network.fr-par-1.snc.ovhcloud.com:9696/"},
)
openstack.compute.Keypair("admin", name="admin",
                          opts=pulumi.ResourceOptions(provider=provider))

KUBECONFIG = yaml.safe_dump({
    "apiVersion": "v1", "kind": "Config", "current-context": "platform",
    "clusters": [{"name": "platform", "cluster": {
        "server": "https://api.k8s.citadelle.internal:6443",
        "certificate-authority": "/etc/ssl/certs/citadelle-k8s-ca.pem",
        "insecure-skip-tls-verify": False}}],
    "contexts": [{"name": "platform", "context": {"cluster": "platform", "user": "ops"}}],
    "users": [{"name": "ops", "user": {}}],
})
k8s.Provider("platform", kubeconfig=KUBECONFIG)

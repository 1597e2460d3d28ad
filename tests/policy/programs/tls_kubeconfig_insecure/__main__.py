"""Policy corpus: Kubernetes providers from kubeconfig text that skips verification or speaks
plain http (built from a template, one per cluster)."""

import json

import pulumi_kubernetes as k8s

CLUSTERS = {
    "k8s-skip-verify": {"server": "https://api.k8s.citadelle.internal:6443",
                        "insecure-skip-tls-verify": True},
    "k8s-plain-http": {"server": "http://api.k8s.citadelle.internal:8080"},
}

for name, cluster in CLUSTERS.items():
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": cluster}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "ops"}}],
        "users": [{"name": "ops", "user": {}}],
    }
    k8s.Provider(name, kubeconfig=json.dumps(kubeconfig))

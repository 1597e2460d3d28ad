"""Policy corpus: a namespace without Pod Security nor default-deny."""

import pulumi

# Objects registered with pulumi-kubernetes' type tokens and manifests as inputs (what its typed
# classes send), through an explicit provider.
cluster = pulumi.ProviderResource("kubernetes", "cluster",
                                 {"kubeconfig": pulumi.Output.secret("{}")})
opts = pulumi.ResourceOptions(provider=cluster)
PSA = {f"pod-security.kubernetes.io/{m}{s}": v for m in ("enforce", "audit", "warn")
       for s, v in (("", "restricted"), ("-version", "v1.31"))}


def obj(token: str, name: str, manifest: dict) -> pulumi.CustomResource:
    return pulumi.CustomResource(token, name, manifest, opts)


def namespace(name: str, labels: dict, annotations: dict | None = None) -> None:
    obj("kubernetes:core/v1:Namespace", f"ns-{name}", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}}})
    obj("kubernetes:networking.k8s.io/v1:NetworkPolicy", f"deny-{name}", {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": name},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})

obj("kubernetes:core/v1:Namespace", "ns-team", {
    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})

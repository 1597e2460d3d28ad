"""Policy corpus: roles as strong as cluster-admin under other names, built in a loop, one as a
generic custom resource, one aggregated from labels."""

import pulumi
import pulumi_kubernetes as k8s

cluster = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret("{}"))
opts = pulumi.ResourceOptions(provider=cluster)

STRONG = {
    "deployer": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    "rbac-manager": [{"apiGroups": ["rbac.authorization.k8s.io"],
                      "resources": ["clusterroles", "clusterrolebindings"],
                      "verbs": ["get", "escalate", "bind"]}],
    "debugger": [{"apiGroups": [""], "resources": ["pods/exec", "pods/attach"],
                  "verbs": ["create"]}],
    "node-reader": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}],
    "sudo": [{"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"],
              "verbs": ["impersonate"]}],
}
for name, rules in STRONG.items():
    k8s.rbac.v1.ClusterRole(name, metadata={"name": name}, rules=rules, opts=opts)

# A namespaced Role with every verb on every resource of its namespace.
k8s.rbac.v1.Role("team-owner", metadata={"name": "owner", "namespace": "team"},
                 rules=[{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], opts=opts)

# Aggregation: the role holds whatever any ClusterRole labelled so holds, now or later.
k8s.rbac.v1.ClusterRole(
    "aggregated", metadata={"name": "aggregated"},
    aggregation_rule={"clusterRoleSelectors": [{"matchLabels": {"team": "platform"}}]},
    opts=opts)

# The same kind registered raw, with the type token and the manifest as inputs.
pulumi.CustomResource("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "wildcard-verbs", {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
    "metadata": {"name": "wildcard-verbs"},
    "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}]}, opts)

# Cluster-wide secrets read, and the built-in edit role bound cluster-wide.
k8s.rbac.v1.ClusterRole("secret-reader", metadata={"name": "secret-reader"},
                        rules=[{"apiGroups": [""], "resources": ["secrets"],
                                "verbs": ["get", "list"]}], opts=opts)
GROUP = {"kind": "Group", "name": "platform-operators", "apiGroup": "rbac.authorization.k8s.io"}
k8s.rbac.v1.ClusterRoleBinding(
    "read-all-secrets", metadata={"name": "read-all-secrets"},
    role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
              "name": "secret-reader"},
    subjects=[GROUP], opts=opts)
k8s.rbac.v1.ClusterRoleBinding(
    "editors", metadata={"name": "editors"},
    role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
    subjects=[GROUP], opts=opts)

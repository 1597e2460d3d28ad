"""Policy corpus (compliant): scoped roles, the namespace's secrets read inside the namespace
only, bound to the platform's named groups and to the namespace's own service account."""

import pulumi
import pulumi_kubernetes as k8s

cluster = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret("{}"))
opts = pulumi.ResourceOptions(provider=cluster)
API = "rbac.authorization.k8s.io"

k8s.rbac.v1.ClusterRole("auditor", metadata={"name": "auditor"}, rules=[
    {"apiGroups": ["", "apps"], "resources": ["pods", "services", "deployments"],
     "verbs": ["get", "list", "watch"]}], opts=opts)
k8s.rbac.v1.ClusterRoleBinding(
    "auditors", metadata={"name": "auditors"},
    role_ref={"apiGroup": API, "kind": "ClusterRole", "name": "auditor"},
    subjects=[{"kind": "Group", "name": "platform-auditors", "apiGroup": API}], opts=opts)

k8s.rbac.v1.Role("app-config", metadata={"name": "app-config", "namespace": "team"}, rules=[
    {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list"]}],
    opts=opts)
for name, subject in {
    "app-config-members": {"kind": "Group", "name": "team-members", "apiGroup": API},
    "app-config-workload": {"kind": "ServiceAccount", "name": "api", "namespace": "team"},
}.items():
    k8s.rbac.v1.RoleBinding(
        name, metadata={"name": name, "namespace": "team"},
        role_ref={"apiGroup": API, "kind": "Role", "name": "app-config"},
        subjects=[subject], opts=opts)

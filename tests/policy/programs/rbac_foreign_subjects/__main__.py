"""Policy corpus: read-only grants to subjects that are not people of the platform."""

import pulumi
import pulumi_kubernetes as k8s

cluster = k8s.Provider("cluster", kubeconfig=pulumi.Output.secret("{}"))
opts = pulumi.ResourceOptions(provider=cluster)
API = "rbac.authorization.k8s.io"
VIEW = {"apiGroup": API, "kind": "ClusterRole", "name": "view"}

k8s.rbac.v1.ClusterRoleBinding(
    "everyone-views", metadata={"name": "everyone-views"}, role_ref=VIEW,
    subjects=[{"kind": "Group", "name": "system:authenticated", "apiGroup": API}], opts=opts)
k8s.rbac.v1.ClusterRoleBinding(
    "anonymous-views", metadata={"name": "anonymous-views"}, role_ref=VIEW,
    subjects=[{"kind": "User", "name": "system:anonymous", "apiGroup": API}], opts=opts)
k8s.rbac.v1.RoleBinding(
    "default-sa", metadata={"name": "default-sa", "namespace": "team"}, role_ref=VIEW,
    subjects=[{"kind": "ServiceAccount", "name": "default", "namespace": "team"}], opts=opts)
k8s.rbac.v1.RoleBinding(
    "foreign-sa", metadata={"name": "foreign-sa", "namespace": "team"}, role_ref=VIEW,
    subjects=[{"kind": "ServiceAccount", "name": "ci", "namespace": "build"}], opts=opts)
k8s.rbac.v1.ClusterRoleBinding(
    "workload-cluster-wide", metadata={"name": "workload-cluster-wide"}, role_ref=VIEW,
    subjects=[{"kind": "ServiceAccount", "name": "exporter", "namespace": "team"}], opts=opts)

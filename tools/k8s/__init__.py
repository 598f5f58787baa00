"""deploy/k8s as the local tooling uses it: kustomize and the operators' CRDs fetched into the
cache (fetch), the overlays rendered (render), pods set up from them as the kubelet would (pods).
The cluster topology (tools.cluster) and the manifest tests both use these."""

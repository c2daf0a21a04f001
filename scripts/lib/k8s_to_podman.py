#!/usr/bin/env python3
"""Turns the rendered deploy/k8s manifests into what `podman kube play`
(podman 4.3) can start, changing as little as possible, for
scripts/container_test.sh:

    k8s_to_podman.py RENDERED.yaml IMAGE WORKERS > PLAY.yaml

- ConfigMaps pass through; Deployments pass through (the workers' replica
  count set to WORKERS).
- A StatefulSet becomes a PersistentVolumeClaim per claim template (named as
  Kubernetes names the first replica's claim) and a Pod; a single-replica
  Deployment fronted by a Service (the emulator) becomes a Pod too. Such a
  Pod is named after its Service, because kube play has no Services: pods
  find each other by pod name on the test's network, so the ConfigMap's
  addresses (orchestrator:50051, collector:50052) and the examples'
  target (emulator:8080) resolve as they do on a cluster.
- gRPC probes become exec probes running `llmload health` on the same port
  (kube play 4.3 knows exec, httpGet and tcpSocket probes, and runs only
  the liveness probe).
- envFrom secretRef is dropped: kube play 4.3 reads no Secret objects.
- containerPorts are dropped (kube play would publish them on the host,
  where replicas collide), named probe ports become numbers.
- The image becomes IMAGE; Namespace, Service, PodDisruptionBudget and
  NetworkPolicy objects are left out (kube play ignores them).

What stays as rendered, and so is what the test shows working: commands,
environment from the ConfigMap and the downward API, ports, resources,
the pod and container security contexts (uid, read-only root filesystem,
no capabilities, no privilege escalation), volumes and mounts.
"""
import copy
import sys

import yaml

KEPT_AS_IS = {"ConfigMap"}
LEFT_OUT = {"Namespace", "Service", "PodDisruptionBudget", "NetworkPolicy", "Secret"}


def service_for(labels, services):
    for svc in services:
        selector = svc["spec"].get("selector") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            return svc["metadata"]["name"]
    return None


def adapt_pod_spec(spec, image):
    for container in spec.get("containers", []):
        container["image"] = image
        # kube play publishes every containerPort on the host, where two
        # replicas collide; on a cluster they only name the pod's ports.
        named = {p["name"]: p["containerPort"] for p in container.pop("ports", []) if "name" in p}
        for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
            http = (container.get(probe_name) or {}).get("httpGet")
            if http and http["port"] in named:
                http["port"] = named[http["port"]]
        container["envFrom"] = [e for e in container.get("envFrom", []) if "secretRef" not in e]
        for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if probe and "grpc" in probe:
                port = probe.pop("grpc")["port"]
                probe["exec"] = {"command": ["llmload", "health", "--quiet", "--timeout", "3",
                                             "--address", f"127.0.0.1:{port}"]}
    return spec


def pod(name, template, image):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(template["metadata"].get("labels", {}))},
        "spec": adapt_pod_spec(copy.deepcopy(template["spec"]), image),
    }


def convert(docs, image, workers):
    services = [d for d in docs if d["kind"] == "Service"]
    out = []
    for doc in docs:
        kind = doc["kind"]
        if kind in KEPT_AS_IS:
            doc["metadata"].pop("namespace", None)
            out.append(doc)
        elif kind in LEFT_OUT:
            continue
        elif kind == "StatefulSet":
            template = doc["spec"]["template"]
            name = doc["spec"]["serviceName"]
            p = pod(name, template, image)
            for claim in doc["spec"].get("volumeClaimTemplates", []):
                claim_name = f"{claim['metadata']['name']}-{doc['metadata']['name']}-0"
                out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": {"name": claim_name}, "spec": claim["spec"]})
                p["spec"].setdefault("volumes", []).append(
                    {"name": claim["metadata"]["name"],
                     "persistentVolumeClaim": {"claimName": claim_name}})
            out.append(p)
        elif kind == "Deployment":
            template = doc["spec"]["template"]
            name = service_for(template["metadata"].get("labels", {}), services)
            headless = any(s["metadata"]["name"] == name and s["spec"].get("clusterIP") == "None"
                           for s in services)
            if name and not headless and doc["spec"].get("replicas", 1) == 1:
                out.append(pod(name, template, image))
            else:
                doc["metadata"].pop("namespace", None)
                doc["spec"]["replicas"] = workers
                adapt_pod_spec(template["spec"], image)
                out.append(doc)
        else:
            sys.exit(f"k8s_to_podman: no rule for kind {kind}")
    return out


def main(rendered, image, workers):
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    yaml.safe_dump_all(convert(docs, image, int(workers)), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])

// The rendered deploy/k8s kustomization, object by object: valid against
// the Kubernetes OpenAPI schemas, and true to llmload's deployment policy.
// Run by run.sh, which renders the YAML files named in LLMLOAD_K8S_RENDERED.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import yaml from "js-yaml";

const root = process.env.LLMLOAD_SOURCE_DIR;
const renders = (process.env.LLMLOAD_K8S_RENDERED ?? "").split(":").filter(Boolean);
assert.ok(root && renders.length > 0, "run through tests/k8s/run.sh");

const load = (file) => yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
const id = (o) => `${o.kind}/${o.metadata?.name}`;
const WORKLOADS = new Set(["Deployment", "StatefulSet", "Job"]);

async function modelFor(obj) {
  const [group, version] = obj.apiVersion.includes("/")
    ? obj.apiVersion.split("/")
    : [null, obj.apiVersion];
  const pkg = group === "monitoring.coreos.com"
    ? "@kubernetes-models/prometheus-operator"
    : "kubernetes-models";
  const mod = await import(`${pkg}/${group ? group + "/" : ""}${version}/${obj.kind}`);
  return mod[obj.kind];
}

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

const podsOf = (objs) =>
  objs.filter((o) => WORKLOADS.has(o.kind)).map((o) => ({
    owner: id(o),
    kind: o.kind,
    labels: o.spec.template.metadata?.labels ?? {},
    annotations: o.spec.template.metadata?.annotations ?? {},
    spec: o.spec.template.spec,
    containers: o.spec.template.spec.containers,
    initContainers: o.spec.template.spec.initContainers ?? [],
  }));

const portsOf = (pod) => pod.containers.flatMap((c) => c.ports ?? []);
const hasPort = (pod, port) =>
  portsOf(pod).some((p) => p.containerPort === port || p.name === port);

// Each rendering gets the whole suite.
for (const file of renders) {
  const objs = load(file);
  const pods = podsOf(objs);
  const byKind = (k) => objs.filter((o) => o.kind === k);

  describe(path.basename(file), () => {
    it("renders the objects of the deployment", () => {
      const names = new Set(objs.map(id));
      for (const want of ["Namespace/llmload", "StatefulSet/llmload-orchestrator",
                          "StatefulSet/llmload-collector", "Deployment/llmload-worker",
                          "Deployment/llmload-emulator", "Service/orchestrator",
                          "Service/collector", "Service/worker", "Service/emulator",
                          "PodDisruptionBudget/llmload-worker", "Secret/llmload-secrets",
                          "Secret/llmload-tokens"]) {
        assert.ok(names.has(want), `${want} missing`);
      }
      if (file.includes("all-components")) {
        assert.ok(names.has("Job/llmload-smoke") && names.has("ServiceMonitor/llmload-worker"),
                  "the optional components did not render");
      }
      for (const o of objs.filter((o) => o.kind !== "Namespace")) {
        assert.equal(o.metadata.namespace, "llmload", `${id(o)} outside the llmload namespace`);
      }
    });

    it("validates every object against the Kubernetes OpenAPI schema", async () => {
      for (const o of objs) {
        const Model = await modelFor(o);
        assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
        assert.doesNotThrow(() => new Model(o).validate(), `${id(o)} is not valid`);
      }
    });

    it("the validator refuses a wrong type and a missing required field", async () => {
      // (kubernetes-models checks types, formats and required fields; it
      // does not refuse unknown fields.)
      const worker = objs.find((o) => id(o) === "Deployment/llmload-worker");
      const Model = await modelFor(worker);
      const wrongType = structuredClone(worker);
      wrongType.spec.replicas = "two";
      assert.throws(() => new Model(wrongType).validate());
      const noName = structuredClone(worker);
      delete noName.spec.template.spec.containers[0].name;
      assert.throws(() => new Model(noName).validate());
    });

    it("every container has requests, limits and a pinned image", () => {
      for (const pod of pods) {
        for (const c of [...pod.containers, ...pod.initContainers]) {
          const where = `${pod.owner} container ${c.name}`;
          for (const kind of ["requests", "limits"]) {
            for (const r of ["cpu", "memory"]) {
              assert.ok(c.resources?.[kind]?.[r], `${where}: no ${kind}.${r}`);
            }
          }
          const tag = c.image.includes(":") ? c.image.split(":").pop() : "";
          assert.ok(tag && tag !== "latest", `${where}: image ${c.image} has no fixed tag`);
        }
      }
    });

    it("every container runs as non-root with a read-only root filesystem", () => {
      for (const pod of pods) {
        const psc = pod.spec.securityContext ?? {};
        for (const c of [...pod.containers, ...pod.initContainers]) {
          const where = `${pod.owner} container ${c.name}`;
          const sc = c.securityContext ?? {};
          assert.equal(sc.runAsNonRoot ?? psc.runAsNonRoot, true, `${where}: runAsNonRoot`);
          const uid = sc.runAsUser ?? psc.runAsUser;
          assert.ok(Number.isInteger(uid) && uid > 0, `${where}: runAsUser ${uid}`);
          assert.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
          assert.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
          assert.deepEqual(sc.capabilities?.drop, ["ALL"], `${where}: capabilities`);
          assert.equal((sc.seccompProfile ?? psc.seccompProfile)?.type, "RuntimeDefault",
                       `${where}: seccomp`);
        }
        assert.equal(pod.spec.automountServiceAccountToken, false, `${pod.owner}: token mounted`);
      }
    });

    it("every long-running container has startup, readiness and liveness probes", () => {
      for (const pod of pods.filter((p) => p.kind !== "Job")) {
        for (const c of pod.containers) {
          for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
            const p = c[probe];
            assert.ok(p, `${pod.owner} ${c.name}: no ${probe}`);
            const port = p.grpc?.port ?? p.httpGet?.port ?? p.tcpSocket?.port;
            assert.ok(hasPort(pod, port), `${pod.owner} ${c.name}: ${probe} port ${port} not declared`);
          }
        }
      }
      // The gRPC services use native gRPC probes on their gRPC port.
      for (const name of ["llmload-orchestrator", "llmload-collector"]) {
        const pod = pods.find((p) => p.owner === `StatefulSet/${name}`);
        for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
          const grpcPort = portsOf(pod).find((p) => p.name === "grpc").containerPort;
          assert.equal(pod.containers[0][probe].grpc?.port, grpcPort, `${name} ${probe}`);
        }
      }
    });

    it("Service selectors and ports match the pods they front", () => {
      for (const svc of byKind("Service")) {
        const fronted = pods.filter((p) => matches(svc.spec.selector, p.labels));
        assert.ok(svc.spec.selector && fronted.length > 0, `Service/${svc.metadata.name} selects no pod`);
        for (const pod of fronted) {
          for (const port of svc.spec.ports) {
            assert.ok(hasPort(pod, port.targetPort ?? port.port),
                      `Service/${svc.metadata.name} port ${port.name} -> ${port.targetPort} not on ${pod.owner}`);
          }
        }
      }
      for (const sts of byKind("StatefulSet")) {
        assert.ok(byKind("Service").some((s) => s.metadata.name === sts.spec.serviceName),
                  `${id(sts)}: serviceName ${sts.spec.serviceName} is no Service`);
      }
      assert.equal(byKind("Service").find((s) => s.metadata.name === "worker").spec.clusterIP,
                   "None", "the worker Service is headless");
    });

    it("NetworkPolicy selectors match real pod labels and ports", () => {
      for (const np of byKind("NetworkPolicy")) {
        const targets = pods.filter((p) => matches(np.spec.podSelector.matchLabels, p.labels));
        assert.ok(targets.length > 0, `${id(np)} applies to no pod`);
        for (const rule of [...(np.spec.ingress ?? []), ...(np.spec.egress ?? [])]) {
          for (const peer of [...(rule.from ?? []), ...(rule.to ?? [])]) {
            if (!peer.podSelector) continue;
            // Clients of the orchestrator are the user's own pods (the run
            // Job of components/smoke-job is one).
            if (peer.podSelector.matchLabels?.["llmload.io/client"] === "true" &&
                !byKind("Job").length) continue;
            assert.ok(pods.some((p) => matches(peer.podSelector.matchLabels, p.labels)),
                      `${id(np)}: peer ${JSON.stringify(peer.podSelector)} matches no pod`);
          }
        }
        for (const rule of np.spec.ingress ?? []) {
          for (const port of rule.ports ?? []) {
            assert.ok(targets.every((p) => hasPort(p, port.port)),
                      `${id(np)}: port ${port.port} is not a container port of its pods`);
          }
        }
      }
      // Only workers (and the orchestrator, for statistics) reach the
      // collector's gRPC port; only workers and clients the orchestrator's.
      const allowedFrom = (component, port) =>
        byKind("NetworkPolicy")
          .filter((np) => np.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === component)
          .flatMap((np) => np.spec.ingress ?? [])
          .filter((r) => (r.ports ?? []).some((p) => p.port === port))
          .flatMap((r) => r.from ?? [{ anyone: true }]);
      assert.deepEqual(
          allowedFrom("collector", 50052).map((f) => f.podSelector?.matchLabels?.["app.kubernetes.io/component"]),
          ["worker", "orchestrator"]);
      const toOrchestrator = allowedFrom("orchestrator", 50051).map((f) => f.podSelector?.matchLabels);
      assert.deepEqual(toOrchestrator[0]?.["app.kubernetes.io/component"], "worker");
      assert.deepEqual(toOrchestrator[1], { "llmload.io/client": "true" });
      assert.ok(byKind("NetworkPolicy").some((np) =>
        Object.keys(np.spec.podSelector).length === 0 && np.spec.policyTypes.includes("Ingress") &&
        !np.spec.ingress), "no default-deny ingress policy");
    });

    it("workers scale as a Deployment with their pod name as id and a drain-long grace", () => {
      const worker = pods.find((p) => p.owner === "Deployment/llmload-worker");
      const env = worker.containers[0].env;
      assert.equal(env.find((e) => e.name === "LLMLOAD_WORKER_ID").valueFrom.fieldRef.fieldPath,
                   "metadata.name");
      const config = byKind("ConfigMap").find((c) => c.data?.LLMLOAD_DRAIN_SECONDS);
      assert.ok(worker.spec.terminationGracePeriodSeconds > Number(config.data.LLMLOAD_DRAIN_SECONDS));
      const pdb = byKind("PodDisruptionBudget")[0];
      assert.ok(matches(pdb.spec.selector.matchLabels, worker.labels));
      // ConfigMaps and Secrets the pods name exist (with kustomize's hashes).
      const names = new Set(objs.map(id));
      for (const pod of pods) {
        for (const c of [...pod.containers, ...pod.initContainers]) {
          for (const ref of c.envFrom ?? []) {
            if (ref.configMapRef) assert.ok(names.has(`ConfigMap/${ref.configMapRef.name}`));
            if (ref.secretRef) assert.ok(names.has(`Secret/${ref.secretRef.name}`));
          }
        }
        for (const v of pod.spec.volumes ?? []) {
          if (v.configMap) assert.ok(names.has(`ConfigMap/${v.configMap.name}`), v.configMap.name);
        }
      }
    });

    it("the stateful services keep /var/lib/llmload on a PersistentVolumeClaim", () => {
      for (const sts of byKind("StatefulSet")) {
        assert.equal(sts.spec.replicas, 1, `${id(sts)}: one replica (README: why)`);
        const claim = sts.spec.volumeClaimTemplates[0].metadata.name;
        const mount = sts.spec.template.spec.containers[0].volumeMounts.find((m) => m.name === claim);
        assert.equal(mount?.mountPath, "/var/lib/llmload", id(sts));
      }
      const config = byKind("ConfigMap").find((c) => c.data?.LLMLOAD_ORCHESTRATOR_DB).data;
      assert.match(config.LLMLOAD_ORCHESTRATOR_DB, /^\/var\/lib\/llmload\//);
      assert.match(config.LLMLOAD_COLLECTOR_DB, /^\/var\/lib\/llmload\//);
    });

    it("Prometheus finds the collector and every worker", () => {
      for (const owner of ["StatefulSet/llmload-collector", "Deployment/llmload-worker"]) {
        const pod = pods.find((p) => p.owner === owner);
        assert.equal(pod.annotations["prometheus.io/scrape"], "true", owner);
        assert.ok(hasPort(pod, Number(pod.annotations["prometheus.io/port"])), owner);
      }
      for (const sm of byKind("ServiceMonitor")) {
        const svc = byKind("Service").filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
        assert.equal(svc.length, 1, `${id(sm)} selects ${svc.length} Services`);
        for (const ep of sm.spec.endpoints) {
          assert.ok(svc[0].spec.ports.some((p) => p.name === ep.port), `${id(sm)} port ${ep.port}`);
        }
      }
    });

    it("the Grafana dashboards ConfigMap is deploy/grafana/dashboards", () => {
      const cm = byKind("ConfigMap").find((c) => c.metadata.labels?.grafana_dashboard === "1");
      assert.ok(cm, "no ConfigMap labelled grafana_dashboard: \"1\"");
      const dir = path.join(root, "deploy/grafana/dashboards");
      const files = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
      assert.deepEqual(Object.keys(cm.data).sort(), files,
                       "run deploy/k8s/sync-dashboards.sh");
      for (const f of files) {
        assert.deepEqual(JSON.parse(cm.data[f]), JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")),
                         `${f} differs: run deploy/k8s/sync-dashboards.sh`);
      }
    });

    it("the run Job runs examples/smoke.json and may reach the orchestrator", () => {
      const job = byKind("Job")[0];
      if (!job) return;  // the component is optional
      const spec = byKind("ConfigMap").find((c) => c.data?.["spec.json"]);
      assert.deepEqual(JSON.parse(spec.data["spec.json"]),
                       JSON.parse(fs.readFileSync(path.join(root, "examples/smoke.json"), "utf8")));
      const c = job.spec.template.spec.containers[0];
      assert.deepEqual(c.command.slice(0, 4), ["llmload", "run", "-f", "/etc/llmload/spec.json"]);
      assert.equal(job.spec.template.metadata.labels["llmload.io/client"], "true");
      assert.equal(job.spec.backoffLimit, 0);
    });
  });
}

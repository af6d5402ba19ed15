"""CPU threads: the cores a process may use (affinity, cgroup quota), and the ``threads`` parameter."""

from __future__ import annotations

import torch

from osvos_plugin import device


def _cgroup(tmp_path, lines: str, files: dict[str, str]):
    (tmp_path / "proc").write_text(lines)
    for rel, text in files.items():
        path = tmp_path / "cg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return device.cgroup_cpu_limit(tmp_path / "cg", tmp_path / "proc")


def test_cgroup_v2_quota_of_the_process_own_cgroup(tmp_path):
    assert _cgroup(tmp_path, "0::/farm/task7\n", {"farm/task7/cpu.max": "150000 100000\n",
                                                  "cpu.max": "max 100000\n"}) == 2  # 1.5 CPUs -> 2 threads
    assert _cgroup(tmp_path, "0::/farm/task8\n", {"farm/task8/cpu.max": "max 100000\n"}) is None


def test_cgroup_v1_quota_and_no_cgroup_at_all(tmp_path):
    assert _cgroup(tmp_path, "4:cpu,cpuacct:/job\n", {"cpu,cpuacct/job/cpu.cfs_quota_us": "400000\n",
                                                      "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n"}) == 4
    assert _cgroup(tmp_path, "4:cpu,cpuacct:/job\n", {"cpu,cpuacct/job/cpu.cfs_quota_us": "-1\n",
                                                      "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n"}) is None
    assert device.cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None


def test_budget_is_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(device, "cgroup_cpu_limit", lambda: 3)
    assert device.cpu_budget() == 3
    monkeypatch.setattr(device, "cgroup_cpu_limit", lambda: None)
    assert device.cpu_budget() == 8


def test_threads_parameter_sets_torch_threads_and_zero_means_the_budget(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "cpu_budget", lambda: 2)
    try:
        assert device.use_threads(1) == 1 and torch.get_num_threads() == 1
        assert device.configure_cpu_threads() == 1  # resolve_device keeps what was chosen
        assert device.use_threads(0) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert device.use_threads(0) == 1
    finally:
        torch.set_num_threads(before)

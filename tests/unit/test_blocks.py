"""How many threads the passes over large arrays use: the cores, a container's CPU quota and
``OMP_NUM_THREADS``."""


def test_threads_follow_a_containers_cpu_quota(tmp_path, monkeypatch):
    from pytest_weightshape import blocks

    def quota(files):
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return blocks.cgroup_cpus(str(root))

    assert quota({"cpu.max": "150000 100000\n"}) == 2  # cgroup v2: 1.5 CPUs
    assert quota({"cpu.max": "max 100000\n"}) is None
    v1 = {"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert quota(v1) == 3
    assert quota({**v1, "cpu/cpu.cfs_quota_us": "-1\n"}) is None
    assert quota({}) is None
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(blocks, "cgroup_cpus", lambda: 1)
    assert blocks.threads() == 1


def test_threads_follow_the_cores_and_omp_num_threads(monkeypatch):
    from pytest_weightshape import blocks

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    default = blocks.threads()
    assert 1 <= default <= blocks.MAX_THREADS
    for value, expected in [("1", 1), ("2", min(default, 2)), ("0", default), ("x", default)]:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert blocks.threads() == expected

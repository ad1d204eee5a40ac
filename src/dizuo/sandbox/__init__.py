"""The government data sandbox (政务数据沙盒): datasets a data owner registers, purpose-bound grants to
enterprises, and queries that run next to the data; only results that pass disclosure control
leave, and every decision is audited."""

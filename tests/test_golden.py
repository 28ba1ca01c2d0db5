"""Golden bytes of format 1: records, refs, journal entries, manifests, marks.

Every literal here was produced by cas before the issue-10 refactoring
(commit f1d96bd5).  Two kinds of test share them:

* codec tests encode FIXED values with the public codecs (``cas.core.records``,
  ``cas.core.tree``) and compare bytes and BLAKE3 digests, then decode them back;
* store tests drive a real local store through every kind of write (save,
  a tree, link, aliases, deletion, a run with a failed step, gc) and read the
  files it wrote straight from disk.  Record times are the only thing that
  varies between runs: each is a 32-character ISO string (a msgpack str8), so
  it is replaced by ``FIXED_TIME`` of the same length before comparing, and
  the digests that depend on it are mapped to the digests of the normalised
  records.  Every other byte is compared as written.

If one of these fails, the on-disk format changed: that needs a new format
version (docs/format.md), not a new literal.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import pytest

import cas
import cas.core.digest
import cas.core.format
import cas.core.records
import cas.core.refs
import cas.core.tree

FIXED_TIME = "2026-01-01T00:00:00.000000+00:00"
TIME_RE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")
RUN = "golden-run"
TRAIN = "7ce3bb8c-4fcd-5442-9e12-1a9423b5137f"  # step run ids: uuid5 of "<run id>/<step>"
EVALUATE = "354b6b8a-5e39-593d-a9c5-b8a5821ac526"

RAW = b"id,value\n1,10\n2,20\n"
RAW_DIGEST = "b63ebc6569d9f56df258ee850bc23dcff7d846df710fa37b6f241fdd1f2dfd86"
TREE_FILES = {
    "weights/layer1.bin": b"\x00\x01\x02\x03",
    "README": b"a model, as a directory\n",
    "weights/extra/bias.bin": b"\x08\x09",
    "config.json": b'{"layers": 2}\n',
}
GARBAGE = b"garbage nobody refers to\n"
GARBAGE_DIGEST = "67823b216e70ad110409e310e1e674d91e08a875959f596e295af2ae493bb6cd"

# -- the records as values (keys as the store builds them: encoding sorts them) ----------

RECORDS: dict[str, dict] = {
    "refs/aliases/demo/ingest/raw/production/0": {
        "type": "alias",
        "alias": "production",
        "created_at": FIXED_TIME,
        "name": "demo/ingest/raw",
        "seq": 0,
        "version": 1,
    },
    "refs/aliases/demo/ingest/raw/production/1": {
        "type": "alias",
        "alias": "production",
        "created_at": FIXED_TIME,
        "name": "demo/ingest/raw",
        "seq": 1,
        "version": 0,
    },
    "refs/deletions/demo/ingest/raw-link/1": {
        "type": "delete",
        "deleted_at": FIXED_TIME,
        "name": "demo/ingest/raw-link",
        "version": 1,
    },
    "refs/runs/golden-run/0": {
        "type": "run_start",
        "params": {"epochs": 3, "lr": 0.1},
        "pipeline": "demo",
        "run_id": "golden-run",
        "seq": 0,
        "started_at": FIXED_TIME,
    },
    "refs/runs/golden-run/1": {
        "type": "step_start",
        "inputs": [["demo/ingest/raw", 1]],
        "run_id": "golden-run",
        "seq": 1,
        "started_at": FIXED_TIME,
        "step": "train",
        "step_run_id": TRAIN,
    },
    "refs/runs/golden-run/2": {
        "type": "step_end",
        "ended_at": FIXED_TIME,
        "error": None,
        "run_id": "golden-run",
        "seq": 2,
        "status": "completed",
        "step": "train",
        "step_run_id": TRAIN,
    },
    "refs/runs/golden-run/3": {
        "type": "step_start",
        "inputs": [],
        "run_id": "golden-run",
        "seq": 3,
        "started_at": FIXED_TIME,
        "step": "evaluate",
        "step_run_id": EVALUATE,
    },
    "refs/runs/golden-run/4": {
        "type": "step_input",
        "created_at": FIXED_TIME,
        "inputs": [["demo/ingest/raw", 1]],
        "run_id": "golden-run",
        "seq": 4,
        "step": "evaluate",
        "step_run_id": EVALUATE,
    },
    "refs/runs/golden-run/5": {
        "type": "step_end",
        "ended_at": FIXED_TIME,
        "error": "ValueError: evaluation failed",
        "run_id": "golden-run",
        "seq": 5,
        "status": "failed",
        "step": "evaluate",
        "step_run_id": EVALUATE,
    },
    "refs/runs/golden-run/6": {
        "type": "run_end",
        "ended_at": FIXED_TIME,
        "error": "step evaluate failed",
        "run_id": "golden-run",
        "seq": 6,
        "status": "failed",
    },
    "refs/versions/demo/ingest/raw-link/1": {
        "type": "version",
        "created_at": FIXED_TIME,
        "digest": RAW_DIGEST,
        "kind": "blob",
        "metadata": {"linked": True},
        "name": "demo/ingest/raw-link",
        "size": 19,
        "version": 1,
    },
    "refs/versions/demo/ingest/raw/1": {
        "type": "version",
        "created_at": FIXED_TIME,
        "digest": RAW_DIGEST,
        "kind": "blob",
        "materializer": "bytes",
        "metadata": {"rows": 2, "source": "golden"},
        "name": "demo/ingest/raw",
        "size": 19,
        "version": 1,
    },
    "refs/versions/demo/train/metrics/1": {
        "type": "version",
        "created_at": FIXED_TIME,
        "digest": "f8a52872e5319a901ca51c70b9ca77facffbd1316d9b9c2157a0853adf47eefc",
        "kind": "blob",
        "materializer": "json",
        "metadata": {"a": {"x": True, "y": None}, "b": [1, 2]},
        "name": "demo/train/metrics",
        "run_id": "golden-run",
        "size": 16,
        "step_run_id": TRAIN,
        "version": 1,
    },
    "refs/versions/demo/train/model/1": {
        "type": "version",
        "created_at": FIXED_TIME,
        "digest": "e8a72d2e4297359d217a68d8463268912f39616b7f3a3b64957eb71f69f83f1d",
        "kind": "tree",
        "materializer": "path",
        "metadata": {},
        "name": "demo/train/model",
        "run_id": "golden-run",
        "size": 44,
        "step_run_id": TRAIN,
        "version": 1,
    },
}

# -- and as bytes: ref -> (BLAKE3 of the bytes, the bytes in hex) ----------------------

GOLDEN: dict[str, tuple[str, str]] = {
    "refs/aliases/demo/ingest/raw/production/0": (
        "5526e0c9f7df1a1db94c7cb68367ab92ed86856a2917dd1c9f1a0d5e63b1841d",
        (
            "86a5616c696173aa70726f64756374696f6eaa637265617465645f6174d920323032362d30312d30315430303a30303a"
            "30302e3030303030302b30303a3030a46e616d65af64656d6f2f696e676573742f726177a373657100a474797065a561"
            "6c696173a776657273696f6e01"
        ),
    ),
    "refs/aliases/demo/ingest/raw/production/1": (
        "a56f4c248239695b06120a6cf07dcf5d90bc691d5b19934e5781f6b734376b37",
        (
            "86a5616c696173aa70726f64756374696f6eaa637265617465645f6174d920323032362d30312d30315430303a30303a"
            "30302e3030303030302b30303a3030a46e616d65af64656d6f2f696e676573742f726177a373657101a474797065a561"
            "6c696173a776657273696f6e00"
        ),
    ),
    "refs/deletions/demo/ingest/raw-link/1": (
        "83347b69cd7a252d9283da9692bfe1826d1a94f4279370ed92e6c49a793e3e14",
        (
            "84aa64656c657465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a46e"
            "616d65b464656d6f2f696e676573742f7261772d6c696e6ba474797065a664656c657465a776657273696f6e01"
        ),
    ),
    "refs/runs/golden-run/0": (
        "7221ed91ddf79e679bb34770dff7c0dff1cb8897d6daaac2d5592dd81e5d98ff",
        (
            "86a6706172616d7382a665706f63687303a26c72cb3fb999999999999aa8706970656c696e65a464656d6fa672756e5f"
            "6964aa676f6c64656e2d72756ea373657100aa737461727465645f6174d920323032362d30312d30315430303a30303a"
            "30302e3030303030302b30303a3030a474797065a972756e5f7374617274"
        ),
    ),
    "refs/runs/golden-run/1": (
        "df588448130441c9c57ed6e0097fb54f3c5c255f8e3b585ebf4e181d3a7d0694",
        (
            "87a6696e707574739192af64656d6f2f696e676573742f72617701a672756e5f6964aa676f6c64656e2d72756ea37365"
            "7101aa737461727465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a4"
            "73746570a5747261696eab737465705f72756e5f6964d92437636533626238632d346663642d353434322d396531322d"
            "316139343233623531333766a474797065aa737465705f7374617274"
        ),
    ),
    "refs/runs/golden-run/2": (
        "696dccde05cd092446d694bfd1df23e0f893ee2b2eb8364333e7f21035436458",
        (
            "88a8656e6465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a5657272"
            "6f72c0a672756e5f6964aa676f6c64656e2d72756ea373657102a6737461747573a9636f6d706c65746564a473746570"
            "a5747261696eab737465705f72756e5f6964d92437636533626238632d346663642d353434322d396531322d31613934"
            "3233623531333766a474797065a8737465705f656e64"
        ),
    ),
    "refs/runs/golden-run/3": (
        "dd50abbe7c62deb25c2d590fdf3da929e5efb2d2cd679bab9c25aa5e7a2eca96",
        (
            "87a6696e7075747390a672756e5f6964aa676f6c64656e2d72756ea373657103aa737461727465645f6174d920323032"
            "362d30312d30315430303a30303a30302e3030303030302b30303a3030a473746570a86576616c75617465ab73746570"
            "5f72756e5f6964d92433353462366238612d356533392d353933642d613963352d623861353832316163353236a47479"
            "7065aa737465705f7374617274"
        ),
    ),
    "refs/runs/golden-run/4": (
        "d434848d2598f1f503ada3442b922f5aaa38cb3022775fb7e0c0ef85bd7204c7",
        (
            "87aa637265617465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a669"
            "6e707574739192af64656d6f2f696e676573742f72617701a672756e5f6964aa676f6c64656e2d72756ea373657104a4"
            "73746570a86576616c75617465ab737465705f72756e5f6964d92433353462366238612d356533392d353933642d6139"
            "63352d623861353832316163353236a474797065aa737465705f696e707574"
        ),
    ),
    "refs/runs/golden-run/5": (
        "d7d288468dfba777e0164db4b4e08a6e01929a33766eda13b2002d78812c6b83",
        (
            "88a8656e6465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a5657272"
            "6f72bd56616c75654572726f723a206576616c756174696f6e206661696c6564a672756e5f6964aa676f6c64656e2d72"
            "756ea373657105a6737461747573a66661696c6564a473746570a86576616c75617465ab737465705f72756e5f6964d9"
            "2433353462366238612d356533392d353933642d613963352d623861353832316163353236a474797065a8737465705f"
            "656e64"
        ),
    ),
    "refs/runs/golden-run/6": (
        "50c8fc87dd50ef12e21da2867fd1ea61b53c3aa97bd4580315873e401185d2dd",
        (
            "86a8656e6465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a5657272"
            "6f72b473746570206576616c75617465206661696c6564a672756e5f6964aa676f6c64656e2d72756ea373657106a673"
            "7461747573a66661696c6564a474797065a772756e5f656e64"
        ),
    ),
    "refs/versions/demo/ingest/raw-link/1": (
        "9b9558e1db1d8770de8c4da2ea1a95c255486541e3ced9044248770fb3f65c23",
        (
            "88aa637265617465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a664"
            "6967657374d9406236336562633635363964396635366466323538656538353062633233646366663764383436646637"
            "3130666133376236663234316664643166326466643836a46b696e64a4626c6f62a86d6574616461746181a66c696e6b"
            "6564c3a46e616d65b464656d6f2f696e676573742f7261772d6c696e6ba473697a6513a474797065a776657273696f6e"
            "a776657273696f6e01"
        ),
    ),
    "refs/versions/demo/ingest/raw/1": (
        "d38f085ac7ec2c74cb23120f3be5adca024845fb4076dafdb8babe84c84d7fd0",
        (
            "89aa637265617465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a664"
            "6967657374d9406236336562633635363964396635366466323538656538353062633233646366663764383436646637"
            "3130666133376236663234316664643166326466643836a46b696e64a4626c6f62ac6d6174657269616c697a6572a562"
            "79746573a86d6574616461746182a4726f777302a6736f75726365a6676f6c64656ea46e616d65af64656d6f2f696e67"
            "6573742f726177a473697a6513a474797065a776657273696f6ea776657273696f6e01"
        ),
    ),
    "refs/versions/demo/train/metrics/1": (
        "818189290fc0efa03170e4ec5fba581d79212c7aa1315e17258c05e363beba74",
        (
            "8baa637265617465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a664"
            "6967657374d9406638613532383732653533313961393031636135316337306239636137376661636666626431333136"
            "6439623963323135376130383533616466343765656663a46b696e64a4626c6f62ac6d6174657269616c697a6572a46a"
            "736f6ea86d6574616461746182a16182a178c3a179c0a162920102a46e616d65b264656d6f2f747261696e2f6d657472"
            "696373a672756e5f6964aa676f6c64656e2d72756ea473697a6510ab737465705f72756e5f6964d92437636533626238"
            "632d346663642d353434322d396531322d316139343233623531333766a474797065a776657273696f6ea77665727369"
            "6f6e01"
        ),
    ),
    "refs/versions/demo/train/model/1": (
        "36195d7fac06db2e4438cb470ce618226638b27f46076d311bd0ad8b9e0e5296",
        (
            "8baa637265617465645f6174d920323032362d30312d30315430303a30303a30302e3030303030302b30303a3030a664"
            "6967657374d9406538613732643265343239373335396432313761363864383436333236383931326633393631366237"
            "6633613362363439353765623731663639663833663164a46b696e64a474726565ac6d6174657269616c697a6572a470"
            "617468a86d6574616461746180a46e616d65b064656d6f2f747261696e2f6d6f64656ca672756e5f6964aa676f6c6465"
            "6e2d72756ea473697a652cab737465705f72756e5f6964d92437636533626238632d346663642d353434322d39653132"
            "2d316139343233623531333766a474797065a776657273696f6ea776657273696f6e01"
        ),
    ),
}

# (journal key, ref) in commit order; each entry's bytes, record digests as in GOLDEN
JOURNAL: list[tuple[str, str]] = [
    ("journal/0000000000000000", "refs/versions/demo/ingest/raw/1"),
    ("journal/0000000000000001", "refs/runs/golden-run/0"),
    ("journal/0000000000000002", "refs/runs/golden-run/1"),
    ("journal/0000000000000003", "refs/versions/demo/train/model/1"),
    ("journal/0000000000000004", "refs/versions/demo/train/metrics/1"),
    ("journal/0000000000000005", "refs/runs/golden-run/2"),
    ("journal/0000000000000006", "refs/runs/golden-run/3"),
    ("journal/0000000000000007", "refs/runs/golden-run/4"),
    ("journal/0000000000000008", "refs/runs/golden-run/5"),
    ("journal/0000000000000009", "refs/runs/golden-run/6"),
    ("journal/0000000000000010", "refs/aliases/demo/ingest/raw/production/0"),
    ("journal/0000000000000011", "refs/aliases/demo/ingest/raw/production/1"),
    ("journal/0000000000000012", "refs/versions/demo/ingest/raw-link/1"),
    ("journal/0000000000000013", "refs/deletions/demo/ingest/raw-link/1"),
]
JOURNAL_HEX: dict[str, str] = {
    "journal/0000000000000000": (
        "82a67265636f7264d9406433386630383561633765633263373463623233313230663362653561646361303234383435"
        "6662343037366461666462386261626538346338346437666430a3726566bf726566732f76657273696f6e732f64656d"
        "6f2f696e676573742f7261772f31"
    ),
    "journal/0000000000000001": (
        "82a67265636f7264d9403732323165643931646466373965363739626233343737306466663763306466663163623838"
        "3937643664616161633264353539326464383165356439386666a3726566b6726566732f72756e732f676f6c64656e2d"
        "72756e2f30"
    ),
    "journal/0000000000000002": (
        "82a67265636f7264d9406466353838343438313330343431633963353765643665303039376662353466336335633235"
        "3566386533623538356562663465313831643361376430363934a3726566b6726566732f72756e732f676f6c64656e2d"
        "72756e2f31"
    ),
    "journal/0000000000000003": (
        "82a67265636f7264d9403336313935643766616330366462326534343338636234373063653631383232363633386232"
        "3766343630373664333131626430616438623965306535323936a3726566d920726566732f76657273696f6e732f6465"
        "6d6f2f747261696e2f6d6f64656c2f31"
    ),
    "journal/0000000000000004": (
        "82a67265636f7264d9403831383138393239306663306566613033313730653465633566626135383164373932313263"
        "3761613133313565313732353863303565333633626562613734a3726566d922726566732f76657273696f6e732f6465"
        "6d6f2f747261696e2f6d6574726963732f31"
    ),
    "journal/0000000000000005": (
        "82a67265636f7264d9403639366463636465303563643039323434366436393462666431646632336530663839336565"
        "3262326562383336343333336537663231303335343336343538a3726566b6726566732f72756e732f676f6c64656e2d"
        "72756e2f32"
    ),
    "journal/0000000000000006": (
        "82a67265636f7264d9406464353061626265376336326465623235633264353930666466336461393239653565666232"
        "6432636436373962616239633235616135653761326563613936a3726566b6726566732f72756e732f676f6c64656e2d"
        "72756e2f33"
    ),
    "journal/0000000000000007": (
        "82a67265636f7264d9406434333438343864323539386631663530336164613334343262393232663561616133386362"
        "3330323237373566623765306330656638356264373230346337a3726566b6726566732f72756e732f676f6c64656e2d"
        "72756e2f34"
    ),
    "journal/0000000000000008": (
        "82a67265636f7264d9406437643238383436386466626137373765303136346462346234653038613665303139323961"
        "3333373636656461313362323030326437383831326336623833a3726566b6726566732f72756e732f676f6c64656e2d"
        "72756e2f35"
    ),
    "journal/0000000000000009": (
        "82a67265636f7264d9403530633866633837646435306566313265323164613238363766643165613631623533633361"
        "6139376264343538303331353837336534303131383564326464a3726566b6726566732f72756e732f676f6c64656e2d"
        "72756e2f36"
    ),
    "journal/0000000000000010": (
        "82a67265636f7264d9403535323665306339663764663161316462393463376362363833363761623932656438363835"
        "3661323931376464316339663161306435653633623138343164a3726566d929726566732f616c69617365732f64656d"
        "6f2f696e676573742f7261772f70726f64756374696f6e2f30"
    ),
    "journal/0000000000000011": (
        "82a67265636f7264d9406135366634633234383233393639356230363132306136636630376463663564393062633639"
        "3164356231393933346535373831663662373334333736623337a3726566d929726566732f616c69617365732f64656d"
        "6f2f696e676573742f7261772f70726f64756374696f6e2f31"
    ),
    "journal/0000000000000012": (
        "82a67265636f7264d9403962393535386531646231643837373064653863346461326561316139356332353534383635"
        "3431653363656439303434323438373730666233663635633233a3726566d924726566732f76657273696f6e732f6465"
        "6d6f2f696e676573742f7261772d6c696e6b2f31"
    ),
    "journal/0000000000000013": (
        "82a67265636f7264d9403833333437623639636437613235326439323833646139363932626665313832366431613934"
        "6634323739333730656439326536633439613739336533653134a3726566d925726566732f64656c6574696f6e732f64"
        "656d6f2f696e676573742f7261772d6c696e6b2f31"
    ),
}
# The tree of demo/train/model: nested paths, sorted bytewise ("README" < "config.json")
MANIFEST_ENTRIES = [
    ("README", "b875d321ba164e902a247342e55d2c4dae57a5a74b7b2025190a12a85d893fa0", 24),
    ("config.json", "b409f3a18cadfc296dc1e0bc1af8cfc28be056f869f1affb710357a9740f2c07", 14),
    ("weights/extra/bias.bin", "55155bf223f19edc6b1fa1e59f03a37735ef7d27097264431ad167ae492ec1f0", 2),
    ("weights/layer1.bin", "f30f5ab28fe047904037f77b6da4fea1e27241c5d132638d8bedce9d40494f32", 4),
]
MANIFEST_DIGEST = "e8a72d2e4297359d217a68d8463268912f39616b7f3a3b64957eb71f69f83f1d"
MANIFEST_HEX = (
    "9493a6524541444d45d94062383735643332316261313634653930326132343733343265353564326334646165353761"
    "3561373462376232303235313930613132613835643839336661301893ab636f6e6669672e6a736f6ed9406234303966"
    "336131386361646663323936646331653062633161663863666332386265303536663836396631616666623731303335"
    "37613937343066326330370e93b6776569676874732f65787472612f626961732e62696ed94035353135356266323233"
    "663139656463366231666131653539663033613337373335656637643237303937323634343331616431363761653439"
    "3265633166300293b2776569676874732f6c61796572312e62696ed94066333066356162323866653034373930343033"
    "37663737623664613466656131653237323431633564313332363338643862656463653964343034393466333204"
)
FORMAT_BYTES = b'{\n  "format": 1,\n  "hash": "blake3",\n  "store_id": "00000000000000000000000000000000",\n  "created_at": "2026-01-01T00:00:00.000000+00:00"\n}\n'


# -- the store scenario ------------------------------------------------------------------


@dataclass
class Written:
    """What a store wrote, read from disk, times and time-dependent digests normalised."""

    refs: list[str] = field(default_factory=list)
    journal: list[tuple[str, str]] = field(default_factory=list)
    records: dict[str, bytes] = field(default_factory=dict)
    entries: dict[str, bytes] = field(default_factory=dict)
    manifest: bytes = b""
    cas_format: bytes = b""
    marks: dict[str, bytes] = field(default_factory=dict)
    sweep_window: tuple[float, float] = (0.0, 0.0)


def write_scenario(root: Path, work: Path) -> tuple[float, float]:
    """Every kind of write cas makes, once; returns the time window of the gc."""
    tree = work / "model"
    for rel, data in TREE_FILES.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    # Format 1 explicitly: these bytes pin format 1, whatever $CAS_NEW_STORE_FORMAT says.
    with cas.open_store(root, index=str(work / "index.sqlite"), format=1) as store:
        raw = store.save(RAW, "demo/ingest/raw", metadata={"source": "golden", "rows": 2})
        with store.run("demo", params={"lr": 0.1, "epochs": 3}, run_id=RUN) as run:
            with run.step("train", inputs=[raw]) as step:
                step.save(tree, "model")
                step.save({"accuracy": 0.9}, "metrics", metadata={"b": [1, 2], "a": {"y": None, "x": True}})
            with pytest.raises(ValueError):
                with run.step("evaluate") as step:
                    step.load("demo/ingest/raw")
                    raise ValueError("evaluation failed")
        store.set_alias("demo/ingest/raw", 1, "production")
        store.delete_alias("demo/ingest/raw", "production")
        store.link("demo/ingest/raw-link", raw.digest, metadata={"linked": True})
        store.delete_version("demo/ingest/raw-link", 1)
        # A blob nothing refers to, written as format 1 lays blobs out, an hour old: gc sweeps it.
        garbage = root / "blobs" / GARBAGE_DIGEST[:2] / GARBAGE_DIGEST[2:]
        garbage.parent.mkdir(parents=True, exist_ok=True)
        garbage.write_bytes(GARBAGE)
        os.utime(garbage, (time.time() - 3600, time.time() - 3600))
        before = time.time()
        assert store.gc(grace=0).removed == 1
        return before, time.time()


def read_blob(root: Path, hexdigest: str) -> bytes:
    data = (root / "blobs" / hexdigest[:2] / hexdigest[2:]).read_bytes()
    assert blake3.blake3(data).hexdigest() == hexdigest
    return data


def normalise_times(data: bytes, count: int) -> bytes:
    out, n = TIME_RE.subn(FIXED_TIME.encode(), data)
    assert n == count, (n, data)
    return out


def write_and_read(tmp: Path) -> Written:
    root = tmp / "store"
    (tmp / "work").mkdir()
    found = Written()
    found.sweep_window = write_scenario(root, tmp / "work")
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert not [n for n in names if n.split("/")[0] not in ("blobs", "refs", "journal", "gc", "tmp", "cas-format")], names
    assert not (root / "blobs" / GARBAGE_DIGEST[:2] / GARBAGE_DIGEST[2:]).exists()
    found.refs = [n for n in names if n.startswith("refs/")]
    normalised: dict[str, str] = {}  # record digest as written -> digest of the normalised record
    for ref in found.refs:
        digest = (root / ref).read_text("ascii")
        assert re.fullmatch("[0-9a-f]{64}", digest), digest  # no newline: 64 ASCII hex
        record = normalise_times(read_blob(root, digest), 1)
        found.records[ref] = record
        normalised[digest] = blake3.blake3(record).hexdigest()
    for key in (n for n in names if n.startswith("journal/")):
        entry = cas.core.records.decode((root / key).read_bytes())
        found.journal.append((key, entry["ref"]))
        found.entries[key] = (root / key).read_bytes().replace(entry["record"].encode(), normalised[entry["record"]].encode())
    tree = cas.core.records.decode(found.records["refs/versions/demo/train/model/1"])["digest"]
    found.manifest = read_blob(root, tree)
    assert read_blob(root, RAW_DIGEST) == RAW  # content under blobs/<2 hex>/<62 hex>
    for data in TREE_FILES.values():
        read_blob(root, blake3.blake3(data).hexdigest())  # every file of the tree, under its digest
    fmt = (root / "cas-format").read_bytes()
    fmt, n = re.subn(rb'"store_id": "[0-9a-f]{32}"', b'"store_id": "' + b"0" * 32 + b'"', fmt)
    assert n == 1
    found.cas_format = normalise_times(fmt, 1)
    for p in (root / "gc").iterdir():
        m = re.fullmatch(r"(\d{16})-([0-9a-f]{12})\.(start|done)", p.name)
        assert m, p.name
        found.marks[m.group(3)] = p.read_bytes()
    return found


# -- codecs: fixed values -> pinned bytes -> the same values --------------------------------


class TestNames:
    def test_format_marker_names(self):
        assert cas.core.format.FORMAT_FILE == "cas-format"
        assert cas.core.format.FORMAT_VERSION == 2
        assert cas.core.format.NEW_STORE_FORMAT == 2  # new stores; the golden format-1 bytes open format=1 explicitly

    def test_ref_paths(self):
        assert cas.core.refs.version_ref("demo/ingest/raw", 3) == "refs/versions/demo/ingest/raw/3"
        assert cas.core.refs.alias_ref("demo/ingest/raw", "production", 0) == "refs/aliases/demo/ingest/raw/production/0"
        assert cas.core.refs.deletion_ref("demo/ingest/raw-link", 1) == "refs/deletions/demo/ingest/raw-link/1"

    @pytest.mark.parametrize(
        "path, kind, owner, number, alias, name",
        [
            ("refs/versions/demo/ingest/raw/3", "versions", "demo/ingest/raw", 3, None, "demo/ingest/raw"),
            ("refs/aliases/demo/ingest/raw/production/12", "aliases", "demo/ingest/raw", 12, "production", "demo/ingest/raw"),
            ("refs/deletions/demo/ingest/raw-link/1", "deletions", "demo/ingest/raw-link", 1, None, "demo/ingest/raw-link"),
            ("refs/runs/golden-run/0", "runs", "golden-run", 0, None, None),
        ],
    )
    def test_ref_paths_parse(self, path, kind, owner, number, alias, name):
        key = cas.core.refs.parse_ref_path(path)
        assert (key.path, key.kind, key.owner, key.number, key.alias, key.name) == (path, kind, owner, number, alias, name)

    def test_journal_keys(self):
        assert [key for key, _ in JOURNAL][:2] == ["journal/0000000000000000", "journal/0000000000000001"]
        assert cas.core.refs.parse_journal_key("journal/0000000000000017") == 17
        assert cas.core.refs.parse_journal_key("journal/0000000000000000") == 0

    def test_content_digest(self):
        assert cas.core.digest.hash_bytes(RAW) == RAW_DIGEST
        assert str(cas.Digest(RAW_DIGEST)) == f"blake3:{RAW_DIGEST}"


class TestCodecs:
    @pytest.mark.parametrize("ref", list(GOLDEN))
    def test_record(self, ref):
        digest, hexdata = GOLDEN[ref]
        data = cas.core.records.encode(RECORDS[ref])
        assert data.hex() == hexdata
        assert blake3.blake3(data).hexdigest() == digest
        assert cas.core.records.decode(data) == RECORDS[ref]
        assert cas.core.records.decode_record(data, digest, ref) == RECORDS[ref]  # the validating decoder accepts it

    def test_every_record_type_is_pinned(self):
        types = {r["type"] for r in RECORDS.values()}
        assert types == {"version", "alias", "delete", "run_start", "step_start", "step_input", "step_end", "run_end"}
        versions = [r for r in RECORDS.values() if r["type"] == "version"]
        assert {r["kind"] for r in versions} == {"blob", "tree"}
        assert any("materializer" not in r for r in versions)  # link() writes none
        assert any("run_id" in r and "step_run_id" in r for r in versions)
        assert any(r["type"] == "alias" and r["version"] == 0 for r in RECORDS.values())  # a removed alias

    def test_encoding_sorts_keys_at_every_level(self):
        record = dict(reversed(RECORDS["refs/versions/demo/train/metrics/1"].items()))
        record["metadata"] = {"b": [1, 2], "a": {"y": None, "x": True}}
        assert cas.core.records.encode(record).hex() == GOLDEN["refs/versions/demo/train/metrics/1"][1]

    def test_manifest(self):
        shuffled = [MANIFEST_ENTRIES[i] for i in (3, 0, 2, 1)]
        data = cas.core.tree.encode_manifest(shuffled)
        assert data.hex() == MANIFEST_HEX
        assert blake3.blake3(data).hexdigest() == MANIFEST_DIGEST
        assert cas.core.tree.decode_manifest(data, MANIFEST_DIGEST) == MANIFEST_ENTRIES
        assert RECORDS["refs/versions/demo/train/model/1"]["digest"] == MANIFEST_DIGEST
        assert RECORDS["refs/versions/demo/train/model/1"]["size"] == sum(s for _, _, s in MANIFEST_ENTRIES)

    @pytest.mark.parametrize("key, ref", JOURNAL)
    def test_journal_entry(self, key, ref):
        record = GOLDEN[ref][0]
        data = cas.core.records.encode({"ref": ref, "record": record})
        assert data.hex() == JOURNAL_HEX[key]
        entry = cas.core.records.decode_journal_entry(data, key)
        assert (entry.ref.path, entry.record) == (ref, record)

    def test_ref_content(self):
        digest = GOLDEN["refs/versions/demo/ingest/raw/1"][0]
        assert cas.core.records.decode_ref(digest.encode("ascii"), "refs/versions/demo/ingest/raw/1") == digest
        assert cas.core.records.decode_ref(digest.encode("ascii") + b"\n", "refs/versions/demo/ingest/raw/1") == digest

    def test_format_marker(self):
        fmt = json.loads(FORMAT_BYTES)
        assert list(fmt) == ["format", "hash", "store_id", "created_at"]
        assert fmt["format"] == 1 and fmt["hash"] == "blake3"


# -- the store: what it writes, byte for byte -------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Written:
    return write_and_read(tmp_path_factory.mktemp("golden"))


class TestStoreWrites:
    def test_refs(self, written):
        assert written.refs == sorted(GOLDEN)

    def test_journal_order(self, written):
        assert written.journal == JOURNAL

    @pytest.mark.parametrize("ref", list(GOLDEN))
    def test_record(self, written, ref):
        assert written.records[ref].hex() == GOLDEN[ref][1]

    @pytest.mark.parametrize("key, ref", JOURNAL)
    def test_journal_entry(self, written, key, ref):
        assert written.entries[key].hex() == JOURNAL_HEX[key]

    def test_manifest(self, written):
        assert written.manifest.hex() == MANIFEST_HEX

    def test_format_marker(self, written):
        assert written.cas_format == FORMAT_BYTES

    def test_gc_marks(self, written):
        assert written.marks["done"] == b"{}\n"
        start = json.loads(written.marks["start"])
        assert list(start) == ["deadline", "candidates"]
        assert start["candidates"] == [GARBAGE_DIGEST]
        before, after = written.sweep_window
        assert before + 600.05 <= start["deadline"] <= after + 600.05  # SWEEP_LIMIT + 0.05 s per candidate
        text = re.sub(rb'"deadline": [0-9.]+,', b'"deadline": 0,', written.marks["start"])
        assert text == b'{"deadline": 0, "candidates": ["' + GARBAGE_DIGEST.encode() + b'"]}\n'

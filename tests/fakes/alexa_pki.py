"""A test PKI for Alexa requests, built with the openssl command line.

AlexaPKI(dir) makes, in `dir`:
  root.pem            the trust anchor (give it to the connector as ca_file)
  chains["good"]      leaf (SAN echo-api.amazon.com) + intermediate, valid now
  chains["expired"]   the same names, valid only in January 2020
  chains["future"]    the same names, valid only from 2099
  chains["nosan"]     subject CN echo-api.amazon.com but SAN other.example.com only
  chains["untrusted"] leaf + intermediate under a root the connector does not trust
and signs bodies with the leaf's key (all leaves share it), like Amazon does.

alexa_body(...) builds a request body (bytes) with a current timestamp.
Standard library only; openssl must be on PATH.
"""
import base64
import datetime
import json
import os
import subprocess

SAN = "echo-api.amazon.com"
SKILL_ID = "amzn1.ask.skill.00000000-test-skill"
USER_ID = "amzn1.ask.account.TESTUSER"

_CA_CONF = """
[ca]
default_ca = test_ca
[test_ca]
dir = %(dir)s
database = $dir/index-%(name)s.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial-%(name)s
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
"""


def _run(args, data=None):
    return subprocess.run(args, input=data, check=True, capture_output=True).stdout


class AlexaPKI:
    def __init__(self, dir):
        self.dir = dir
        os.makedirs(os.path.join(dir, "newcerts"), exist_ok=True)
        self.leaf_key = self._key("leaf")
        root_key = self._key("root")
        inter_key = self._key("inter")
        other_key = self._key("other-root")
        self.root = self._self_signed("root", root_key, "wirehub test root")
        self.other_root = self._self_signed("other-root", other_key, "an untrusted root")
        inter = self._issue("inter", inter_key, "wirehub test intermediate", "root", root_key,
                            self.root, ca=True)
        other_inter = self._issue("other-inter", inter_key, "untrusted intermediate",
                                  "other-root", other_key, self.other_root, ca=True)
        good = self._issue("good", self.leaf_key, SAN, "inter", inter_key, inter, san=SAN)
        expired = self._issue("expired", self.leaf_key, SAN, "inter", inter_key, inter, san=SAN,
                              start="20200101000000Z", end="20200201000000Z")
        future = self._issue("future", self.leaf_key, SAN, "inter", inter_key, inter, san=SAN,
                             start="20990101000000Z", end="20990201000000Z")
        nosan = self._issue("nosan", self.leaf_key, SAN, "inter", inter_key, inter,
                            san="other.example.com")
        untrusted = self._issue("untrusted", self.leaf_key, SAN, "other-inter", inter_key,
                                other_inter, san=SAN)
        def read(path):
            with open(path) as f:
                return f.read()
        self.ca_file = self.root
        self.chains = {
            "good": read(good) + read(inter),
            "expired": read(expired) + read(inter),
            "future": read(future) + read(inter),
            "nosan": read(nosan) + read(inter),
            "untrusted": read(untrusted) + read(other_inter),
        }

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        path = self._path(name + ".key")
        _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
              "-out", path])
        return path

    def _self_signed(self, name, key, cn):
        path = self._path(name + ".pem")
        ext = self._path(name + ".ext")
        with open(ext, "w") as f:
            f.write("[v3]\nbasicConstraints=critical,CA:true\n"
                    "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n")
        _run(["openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=" + cn, "-days", "30",
              "-sha256", "-out", path, "-extensions", "v3", "-config", self._conf(name, ext)])
        return path

    def _conf(self, name, ext):
        conf = self._path(name + ".cnf")
        with open(conf, "w") as f:
            f.write(_CA_CONF % {"dir": self.dir, "name": name})
            with open(ext) as e:
                f.write(e.read())
        open(self._path("index-%s.txt" % name), "a").close()
        serial = self._path("serial-" + name)
        if not os.path.exists(serial):
            with open(serial, "w") as f:
                self._serials = getattr(self, "_serials", 0) + 1
                f.write("%06X\n" % (0x1000 * self._serials))
        return conf

    def _issue(self, name, key, cn, ca_name, ca_key, ca_cert, ca=False, san=None, start=None,
               end=None):
        csr = self._path(name + ".csr")
        path = self._path(name + ".pem")
        ext = self._path(name + ".ext")
        lines = ["[v3]"]
        if ca:
            lines += ["basicConstraints=critical,CA:true", "keyUsage=critical,keyCertSign,cRLSign"]
        else:
            lines += ["basicConstraints=CA:false",
                      "keyUsage=critical,digitalSignature,keyEncipherment",
                      "extendedKeyUsage=serverAuth,clientAuth"]
        if san:
            lines.append("subjectAltName=DNS:" + san)
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        _run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr,
              "-config", self._conf(name, ext)])
        args = ["openssl", "ca", "-batch", "-notext", "-config", self._conf(ca_name, ext),
                "-extfile", ext, "-extensions", "v3", "-keyfile", ca_key, "-cert", ca_cert,
                "-in", csr, "-out", path]
        if start:
            args += ["-startdate", start, "-enddate", end]
        else:
            args += ["-days", "20"]
        _run(args)
        return path

    def sign(self, body, digest="sha256"):
        """base64 RSA signature of the raw body bytes with the leaf's key."""
        sig = _run(["openssl", "dgst", "-" + digest, "-sign", self.leaf_key, "-binary"], body)
        return base64.b64encode(sig).decode()

    def headers(self, body, url, sha1=False, sha256=True):
        h = {"Content-Type": "application/json; charset=utf-8", "SignatureCertChainUrl": url}
        if sha256:
            h["Signature-256"] = self.sign(body)
        if sha1:
            h["Signature"] = self.sign(body, "sha1")
        return h


def now_iso(offset_s=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def alexa_body(rtype="IntentRequest", request_id="amzn1.echo-api.request.1", intent=None,
               slots=None, skill_id=SKILL_ID, timestamp=None, new=True, attributes=None,
               extra=None, locale="en-US"):
    """A request body as Alexa sends it (bytes). `slots`: name → value or a full slot object."""
    request = {"type": rtype, "requestId": request_id, "locale": locale,
               "timestamp": timestamp or now_iso()}
    if rtype == "IntentRequest":
        sl = {}
        for name, v in (slots or {}).items():
            sl[name] = v if isinstance(v, dict) else {"name": name, "value": v,
                                                      "confirmationStatus": "NONE"}
        request["intent"] = {"name": intent or "HelloIntent", "confirmationStatus": "NONE",
                             "slots": sl}
    if rtype == "SessionEndedRequest":
        request["reason"] = "USER_INITIATED"
    request.update(extra or {})
    body = {
        "version": "1.0",
        "session": {"new": new, "sessionId": "amzn1.echo-api.session.1",
                    "application": {"applicationId": skill_id},
                    "attributes": attributes or {}, "user": {"userId": USER_ID}},
        "context": {"System": {"application": {"applicationId": skill_id},
                               "user": {"userId": USER_ID},
                               "device": {"deviceId": "amzn1.ask.device.1"},
                               "apiEndpoint": "https://api.amazonalexa.com"}},
        "request": request,
    }
    return json.dumps(body).encode()

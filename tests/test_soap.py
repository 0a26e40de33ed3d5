"""The SOAP side end to end: a real HTTP server, zeep reading the WSDL."""

import logging
import time

import pytest
import requests
import zeep
from zeep.exceptions import Fault

from service import services
from tasktypes import ThreadStore, make_application
from tasktypes.devserver import BackgroundServer

from conftest import wait_until

ENVELOPE = ('<?xml version="1.0"?>%s<soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:t="tasktypes"><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>')


def soap_post(url, body, doctype=""):
    return requests.post(url + "/soap", data=(ENVELOPE % (doctype, body)).encode(),
                         headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=10)


@pytest.fixture
def server():
    """(base url, store) of the shipped services on a thread store."""
    store = ThreadStore(workers=4, result_ttl=60)
    app = make_application(services, store=store, max_body=64 * 1024)
    with BackgroundServer(app) as url:
        yield url, store
    store.close()


@pytest.fixture
def client(server):
    return zeep.Client(server[0] + "/soap?wsdl")


def fault_of(call, *args):
    with pytest.raises(Fault) as info:
        call(*args)
    return info.value


def test_task_flow_submit_progress_result(client):
    service = client.service
    task_id = service.countdown(5, 0.1)
    assert isinstance(task_id, int) and 0 < task_id < 2 ** 53

    early = service.countdown_progress(task_id)
    assert early.task_id == task_id
    assert early.status in ("queued", "running")
    assert 0.0 <= early.progress < 1.0

    fault = fault_of(service.countdown_result, task_id)
    assert fault.code.endswith("Client.TaskNotFinished")

    seen = wait_until(lambda: (lambda p: p if 0 < p.progress < 1 else None)(
        service.countdown_progress(task_id)), 5)
    assert seen.status == "running" and seen.message.endswith("/ 5")

    done = wait_until(lambda: (lambda p: p if p.status == "done" else None)(
        service.countdown_progress(task_id)), 5)
    assert done.progress == 1.0 and done.message == "5 / 5"
    assert done.duration >= 0.5 and done.starttime > time.time() - 60
    assert service.countdown_result(task_id) == 5
    assert service.countdown_result(task_id) == 5  # read any number of times
    frozen = service.countdown_progress(task_id).duration
    time.sleep(0.05)
    assert service.countdown_progress(task_id).duration == frozen


def test_plain_method_unchanged(client):
    assert client.service.echo("hello") == "hello"


def test_unknown_id_and_id_of_another_method(client):
    service = client.service
    assert fault_of(service.countdown_progress, 12345).code.endswith("Client.TaskNotFound")
    assert fault_of(service.countdown_result, 12345).code.endswith("Client.TaskNotFound")
    task_id = service.countdown(0, 0)
    fault = fault_of(service.cloneInstance_progress, task_id)
    assert fault.code.endswith("Client.TaskNotFound")


def test_failing_task(client):
    service = client.service
    task_id = service.failingTask("disk full", 0.0)
    state = service.failingTask_wait(task_id, 5)
    assert state.status == "failed"
    assert state.message == "ValueError: disk full"
    assert state.progress == 0.0
    fault = fault_of(service.failingTask_result, task_id)
    assert fault.code.endswith("Server.TaskFailed")
    assert fault.message == "ValueError: disk full"
    assert "Traceback" not in fault.message


def test_complex_result(client):
    service = client.service
    task_id = service.cloneInstance("vm-7", "copy-of-7")
    assert service.cloneInstance_wait(task_id, 10).status == "done"
    info = service.cloneInstance_result(task_id)
    assert info.instance_id == "vm-7-clone"
    assert info.name == "copy-of-7"
    assert info.state == "running"
    assert info.disk_images == ["copy-of-7-disk0.qcow2", "copy-of-7-disk1.qcow2"]


def test_falsy_result_comes_back_as_itself(client):
    service = client.service
    task_id = service.countdown(0, 0)
    assert service.countdown_wait(task_id, 5).status == "done"
    assert service.countdown_result(task_id) == 0


def test_finished_tasks_expire_after_the_ttl():
    store = ThreadStore(workers=1, result_ttl=0.3)
    with BackgroundServer(make_application(services, store=store)) as url:
        service = zeep.Client(url + "/soap?wsdl").service
        task_id = service.countdown(0, 0)
        assert service.countdown_wait(task_id, 5).status == "done"
        assert service.countdown_result(task_id) == 0

        def forgotten():
            try:
                service.countdown_progress(task_id)
            except Fault as fault:
                return fault.code.endswith("Client.TaskNotFound")
        wait_until(forgotten, 5)
        assert len(store._tasks) == 0  # memory is released, not just hidden
    store.close()


def test_busy_when_the_queue_is_full():
    store = ThreadStore(workers=1, max_queued=2)
    with BackgroundServer(make_application(services, store=store)) as url:
        service = zeep.Client(url + "/soap?wsdl").service
        running = service.countdown(20, 0.05)
        wait_until(lambda: service.countdown_progress(running).status == "running")
        queued = [service.countdown(1, 0), service.countdown(1, 0)]
        assert all(service.countdown_progress(t).status == "queued" for t in queued)
        fault = fault_of(service.countdown, 1, 0)
        assert fault.code.endswith("Server.Busy")
        # nothing was lost: every accepted task still finishes
        for task_id in [running] + queued:
            assert service.countdown_wait(task_id, 10).status == "done"
    store.close()


def test_wrong_argument_type_is_a_client_fault(server):
    response = soap_post(server[0], "<t:countdown><t:steps>many</t:steps>"
                                    "<t:delay>0.1</t:delay></t:countdown>")
    assert response.status_code == 500  # SOAP 1.1: every fault is HTTP 500
    assert "Client.ValidationError" in response.text


def test_missing_task_id_is_a_client_fault(server):
    response = soap_post(server[0], "<t:countdown_progress/>")
    assert "<faultcode>soap11env:Client" in response.text


def test_malformed_and_empty_bodies_are_client_faults(server):
    url = server[0]
    for body in (b"", b"<not-xml", b"\xff\xfe garbage"):
        response = requests.post(url + "/soap", data=body,
                                 headers={"Content-Type": "text/xml"}, timeout=10)
        assert response.status_code == 500
        assert "<faultcode>soap11env:Client" in response.text, body
    assert zeep.Client(url + "/soap?wsdl").service.echo("still here") == "still here"


def test_xxe_entity_is_never_resolved(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doctype = '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://%s">]>' % secret
    response = soap_post(server[0], "<t:echo><t:text>&xxe;</t:text></t:echo>", doctype)
    assert "TOP-SECRET" not in response.text
    assert "Client.DTDNotAllowed" in response.text


def test_billion_laughs_is_refused_at_once(server):
    entities = ['<!ENTITY lol "lol">'] + [
        '<!ENTITY lol%d "%s">' % (i, ("&lol%s;" % (i - 1 if i > 1 else "")) * 10)
        for i in range(1, 10)]
    doctype = "<!DOCTYPE r [%s]>" % "".join(entities)
    started = time.monotonic()
    response = soap_post(server[0], "<t:echo><t:text>&lol9;</t:text></t:echo>", doctype)
    assert "Client.DTDNotAllowed" in response.text
    assert "lollollol" not in response.text
    assert time.monotonic() - started < 5


def test_oversized_body_gets_413_without_being_read(server):
    url = server[0]
    big = b"<x>" + b"a" * (200 * 1024) + b"</x>"
    response = requests.post(url + "/soap", data=big,
                             headers={"Content-Type": "text/xml"}, timeout=10)
    assert response.status_code == 413
    # chunked, without a Content-Length
    response = requests.post(url + "/soap", data=iter([big[:100000], big[100000:]]),
                             headers={"Content-Type": "text/xml"}, timeout=10)
    assert response.status_code == 413
    assert zeep.Client(url + "/soap?wsdl").service.echo("ok") == "ok"


def test_a_bad_request_makes_one_short_log_line(server, caplog):
    caplog.set_level(logging.INFO)
    soap_post(server[0], "<t:echo><t:text>" + "x" * 50000 + "</t:nope>")
    soap_post(server[0], "<t:countdown_progress><t:task_id>5</t:task_id>"
                         "</t:countdown_progress>")
    assert caplog.records, "the bad requests were logged"
    for record in caplog.records:
        assert len(record.getMessage()) < 2100
        if record.name.startswith("spyne"):
            assert record.exc_info is None


def test_wsdl_address_is_the_request_own_not_the_first_callers(server):
    url = server[0]
    forged = requests.get(url + "/soap?wsdl", headers={"Host": "evil.example:666"},
                          timeout=10)
    assert 'location="http://evil.example:666/soap"' in forged.text
    honest = requests.get(url + "/soap?wsdl", timeout=10)
    assert 'location="%s/soap"' % url in honest.text
    assert "evil" not in honest.text


def test_wsdl_address_is_the_public_url_when_configured():
    app = make_application(services, public_url="https://tasks.example.com/api/")
    with BackgroundServer(app) as url:
        text = requests.get(url + "/soap?wsdl", headers={"Host": "evil.example"},
                            timeout=10).text
    assert 'location="https://tasks.example.com/api/soap"' in text
    assert "evil" not in text
    app.close()


def test_unknown_path_is_404(server):
    assert requests.get(server[0] + "/nothing", timeout=10).status_code == 404


def test_nan_for_a_double_is_a_client_fault(server):
    task_id = zeep.Client(server[0] + "/soap?wsdl").service.countdown(0, 0)
    for body in ("<t:countdown_wait><t:task_id>%d</t:task_id><t:timeout>NaN</t:timeout>"
                 "</t:countdown_wait>" % task_id,
                 "<t:countdown><t:steps>1</t:steps><t:delay>NaN</t:delay></t:countdown>"):
        response = soap_post(server[0], body)
        assert "<faultcode>soap11env:Client" in response.text, response.text


def raw_post(url, head_extra, body):
    """Send a POST by hand (headers requests would refuse to send); the reply's
    status line."""
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), 10) as sock:
        sock.sendall(("POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\n%s\r\n" % head_extra).encode() + body)
        sock.settimeout(10)
        return sock.recv(4096).split(b"\r\n", 1)[0].decode()


def test_413_comes_before_the_body_is_read(server):
    # 1 GB announced, 10 bytes sent: a server that read the body first would
    # wait for the rest instead of answering.
    status = raw_post(server[0], "Content-Length: %d\r\n" % 2 ** 30, b'{"jsonrpc":')
    assert status.split()[1] == "413"


def test_negative_content_length_is_refused(server):
    status = raw_post(server[0], "Content-Length: -1\r\nConnection: close\r\n",
                      b'{"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1}')
    assert status.split()[1] in ("400", "413")


def test_utf16_billion_laughs_is_refused_before_parsing(server):
    entities = '<!ENTITY lol "lol"><!ENTITY lol1 "%s">' % ("&lol;" * 10)
    text = ENVELOPE % ("<!DOCTYPE r [%s]>" % entities, "<t:echo><t:text>&lol1;</t:text></t:echo>")
    text = text.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    response = requests.post(server[0] + "/soap", data=text.encode("utf-16"),
                             headers={"Content-Type": "text/xml; charset=utf-16"}, timeout=10)
    assert "Client.DTDNotAllowed" in response.text


def test_fast_soap_output_is_the_document_spyne_writes():
    """FastSoap11 writes flat types by a plan: byte for byte spyne's output."""
    from spyne import Application
    from spyne.protocol.soap import Soap11
    from tasktypes.soap import FastSoap11, SafeSoap11, SoapApplication

    store = ThreadStore(workers=2)

    def soap_app(out_protocol):
        app = Application(services, "tasktypes", name="TaskService",
                          in_protocol=SafeSoap11(validator="soft"), out_protocol=out_protocol)
        app.tasktypes_store = store
        return SoapApplication(app)

    fast, plain = soap_app(FastSoap11()), soap_app(Soap11())
    with BackgroundServer(fast) as fast_url, BackgroundServer(plain) as plain_url:
        def both(body):
            replies = [requests.post(url, data=(ENVELOPE % ("", body)).encode(), timeout=10,
                                     headers={"Content-Type": "text/xml"}).content
                       for url in (fast_url, plain_url)]
            assert replies[0] == replies[1], replies
            return replies[0]

        for submit in ("<t:countdown><t:steps>2</t:steps><t:delay>0</t:delay></t:countdown>",
                       "<t:cloneInstance><t:instance_id>a</t:instance_id>"
                       "<t:new_instance_name>b</t:new_instance_name></t:cloneInstance>",
                       "<t:failingTask><t:message>no</t:message><t:delay>0</t:delay>"
                       "</t:failingTask>"):
            method = submit[3:submit.index(">")]
            task_id = int(requests.post(
                fast_url, data=(ENVELOPE % ("", submit)).encode(),
                headers={"Content-Type": "text/xml"}, timeout=10,
            ).text.split("task_id>")[1].split("<")[0])
            body = "<t:{0}_wait><t:task_id>{1}</t:task_id><t:timeout>5</t:timeout></t:{0}_wait>"
            assert b"<tns:status>" in both(body.format(method, task_id))
            for control in ("progress", "result", "cancel"):
                both("<t:{0}_{1}><t:task_id>{2}</t:task_id></t:{0}_{1}>".format(
                    method, control, task_id))
        both("<t:echo><t:text>x &lt; y</t:text></t:echo>")
        both("<t:countdown_progress><t:task_id>1</t:task_id></t:countdown_progress>")
    store.close()

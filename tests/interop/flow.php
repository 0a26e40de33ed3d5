<?php
// The whole task flow with PHP's own SoapClient, from the WSDL only.
// Usage: php flow.php http://127.0.0.1:8000   Prints one JSON object of what
// the client saw; tests/test_interop.py checks it.
$base = $argv[1];
$client = new SoapClient($base . "/soap?wsdl", [
    "cache_wsdl" => WSDL_CACHE_NONE,
    "exceptions" => true,
    "features" => SOAP_SINGLE_ELEMENT_ARRAYS,
]);
$seen = [];

// Document/literal wrapped: arguments go in an array of the wrapper's
// fields, and the answer is the response wrapper: one member, "<op>Result".
function call($client, $op, $args) {
    $response = $client->__soapCall($op, [$args]);
    return $response->{$op . "Result"};
}

function fault($client, $op, $args) {
    try {
        call($client, $op, $args);
        return null;
    } catch (SoapFault $f) {
        return ["faultcode" => $f->faultcode, "faultstring" => $f->faultstring];
    }
}

$seen["echo"] = call($client, "echo", ["text" => "hi"]);

$short = call($client, "countdown", ["steps" => 3, "delay" => 0.05])->task_id;
$seen["short_id_type"] = gettype($short);
$seen["short_wait"] = call($client, "countdown_wait", ["task_id" => $short, "timeout" => 20]);
$seen["short_progress"] = call($client, "countdown_progress", ["task_id" => $short]);
$seen["short_result"] = call($client, "countdown_result", ["task_id" => $short]);

$long = call($client, "countdown", ["steps" => 100, "delay" => 0.1])->task_id;
$seen["long_progress"] = call($client, "countdown_progress", ["task_id" => $long]);
$seen["not_finished"] = fault($client, "countdown_result", ["task_id" => $long]);
$seen["cancel"] = call($client, "countdown_cancel", ["task_id" => $long]);
$seen["cancelled"] = fault($client, "countdown_result", ["task_id" => $long]);

$clone = call($client, "cloneInstance",
              ["instance_id" => "vm-7", "new_instance_name" => "copy"])->task_id;
$seen["clone_wait"] = call($client, "cloneInstance_wait", ["task_id" => $clone, "timeout" => 20]);
$seen["clone_result"] = call($client, "cloneInstance_result", ["task_id" => $clone]);

$failing = call($client, "failingTask", ["message" => "disk full", "delay" => 0])->task_id;
$seen["failing_wait"] = call($client, "failingTask_wait", ["task_id" => $failing, "timeout" => 20]);
$seen["failed"] = fault($client, "failingTask_result", ["task_id" => $failing]);

$seen["not_found"] = fault($client, "countdown_progress", ["task_id" => 12345]);
$seen["bad_argument"] = fault($client, "countdown", ["steps" => 20000, "delay" => 0.1]);

echo json_encode($seen), "\n";

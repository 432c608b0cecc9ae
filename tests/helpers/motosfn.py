"""moto's Step Functions AWS SDK integrations (`arn:aws:states:::aws-sdk:SERVICE:action`) made to
call services as Step Functions does, patched in at server start.

moto 5.1.22 executes state machines (once `POST /moto-api/config` asks it to) with an interpreter
ported from LocalStack (moto/stepfunctions/parser/). Its aws-sdk tasks hand the state's Parameters
to a boto3 client unchanged. What differs from Step Functions (the AWS SDK integrations page of the
Step Functions developer guide), and what this module makes it do instead:

- Parameter names: Step Functions takes every API's members in PascalCase ("LogGroupName", also
  for CloudWatch Logs, whose API says "logGroupName") and answers in PascalCase ("LogStreams",
  "CreationTime"). moto passes the names to boto3 as written, so a camelCase API sees none of its
  parameters, and answers in the API's own casing. Here: request members are renamed to the
  service model's names and response members to PascalCase, recursively (what LocalStack's
  `_normalise_parameters` / `_normalise_response` do; moto's port left them empty).
- Service names: Step Functions names CloudWatch Logs `cloudwatchlogs` (the Java SDK's name);
  boto3 knows only `logs`, so the task fails with UnknownServiceError. Here: `cloudwatchlogs` is
  `logs`.
- JSONPath: a path that names one node (no wildcard, filter, slice or union), such as
  `$.LogStreams[0].CreationTime`, gives that node in Step Functions; moto gives a one-element
  list when an array index comes before the last step (its fix of moto issue 7825), so such a
  value is `[1796…]` instead of a number and `IsString` on `$.findings[0].Id` is false. Here: a
  definite path with one match gives the node itself, in every place moto evaluates paths.
- SendTaskHeartbeat right after the task's message was sent (a collector that heartbeats when it
  takes a job) is refused with InvalidToken until moto's task has started its heartbeat timer, a
  race; or always, for a task without HeartbeatSeconds. Step Functions accepts a heartbeat for
  any task token of a running task. Here: accepted (the timer, once started, starts anew).
- A second StartExecution of a state machine fails with HTTP 500 ("cannot pickle
  '_thread.RLock' object"): moto deep-copies the state machine for each execution, with the
  executions it ran (and their locks). Here: the copy leaves the executions out.
- An answer (SendTaskSuccess/Failure) that arrives after the task's call returned but before the
  task sets up its heartbeat timer is lost when the state has HeartbeatSeconds: the timer starts
  unset and waits HeartbeatSeconds without looking at the answer, and the state fails with
  States.Timeout. (An SSM agent reading the command from ListCommands answers that early.) Step
  Functions keeps the answer. Here: a timer set up after an answer starts as if just notified,
  so the answer is taken at once.
- SendTaskFailure's `cause` is dropped: a Catch sees `"Cause": null`. Here: kept.
- A path with a wildcard or filter that matches nothing raises (States.Runtime) unless it has the
  one shape moto allows (`$.a[*]`, `$.a[*].b`): `$.Reservations[*].Instances[*].InstanceId` of an
  empty answer fails. Step Functions gives `[]` for such an indefinite path. Here: `[]`.
- EC2 RunInstances `UserData`: Step Functions sends it as given, which the EC2 API requires to be
  base64 already; boto3 base64-encodes it once more, so the instance's user data would be the
  base64 text of what the state machine meant. Here: the aws-sdk clients send it as given.

- SSM SendCommand accepts any document name and any instance ID and records the command as
  run ("Success"). SSM refuses a document that does not exist (InvalidDocument) and an instance
  whose SSM agent is not registered and online (InvalidInstanceId), at once; the flow's memory
  step counts on that to go on to the disks without waiting. Here: the document must exist
  (CreateDocument), and an instance counts as managed only while it is running and carries the tag
  `motosfn:ssm-managed` = `true` (a test's stand-in for "its agent registered"; moto has no
  agent inventory). The command stays in moto's records (ListCommands) for a test's fake agent.
- SendCommand with InstanceIds and no Targets: moto adds the instances its Targets select, and no
  Targets is an empty EC2 filter, so the command names every instance of the region (and
  ListCommands of any of them shows it). Here: no Targets selects none.

What stays as moto does it (see flow/README.md): a task's `Credentials` (RoleArn) is evaluated
but no role is assumed: every call runs in moto's default account with fixed keys.
"""

import copy
import importlib

import botocore.session
from botocore.handlers import base64_encode_user_data
from jsonpath_ng.ext import parse
from moto.core.exceptions import JsonRESTError
from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models import ec2_backends
from moto.ssm.models import Command, SimpleSystemManagerBackend
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.models import StateMachineInstance
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk,
)
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

# Where moto's interpreter imported extract_json (by name, so each is patched).
EXTRACT_JSON_USERS = [
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.intrinsic.argument.argument",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.timestamp_operators",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.boolean_equals",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.numeric",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.string_operators",
    "moto.stepfunctions.parser.asl.eval.states",
]
# A path with any of these may name several nodes (wildcard, recursion, filter, slice, union).
INDEFINITE = ("*", "..", "?", ":", ",", "(")

# The tag that makes a moto instance "SSM-managed" (its agent registered), and its value.
SSM_MANAGED_TAG = ("motosfn:ssm-managed", "true")

# Step Functions' aws-sdk service names that boto3 spells otherwise.
SERVICE_NAMES = {"cloudwatchlogs": "logs", "sfn": "stepfunctions", "states": "stepfunctions"}


def install():
    """Patches moto's aws-sdk task so that every state machine in this process calls services as
    Step Functions does (the module's docstring lists what changes)."""
    task = aws_sdk.StateTaskServiceAwsSdk
    models = botocore.session.get_session()
    original_client_for = aws_sdk.boto_client_for

    def operation(self):
        service = models.get_service_model(self._get_boto_service_name())
        return service.operation_model(service.operation_names[
            [n.lower() for n in service.operation_names].index(self.resource.api_action.lower())])

    def get_boto_service_name(self, boto_service_name=None):
        name = boto_service_name or self.resource.api_name
        return SERVICE_NAMES.get(name, name)

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        shape = operation(self).input_shape
        if shape is not None:
            self._to_boto_request(parameters, shape)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        shape = operation(self).output_shape
        if shape is not None:
            self._from_boto_response(response, shape)

    def client_for(*args, **kwargs):
        client = original_client_for(*args, **kwargs)
        client.meta.events.unregister("before-parameter-build.ec2.RunInstances", base64_encode_user_data)
        return client

    def definite_extract(original):
        def extract_json(path, data):
            definite = not any(mark in path for mark in INDEFINITE)
            matches = parse(path).find(data)
            if definite and len(matches) == 1:
                return matches[0].value
            if not definite and not matches:
                return []
            return original(path, data)
        return extract_json

    original_heartbeat = CallbackEndpoint.notify_heartbeat

    def notify_heartbeat(self):
        original_heartbeat(self)
        return True

    CallbackEndpoint.notify_heartbeat = notify_heartbeat

    original_setup_heartbeat = CallbackEndpoint.setup_heartbeat_endpoint

    def setup_heartbeat_endpoint(self, heartbeat_seconds):
        endpoint = original_setup_heartbeat(self, heartbeat_seconds)
        if self.get_outcome() is not None:
            endpoint.notify()
        return endpoint

    CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint

    def deepcopy_without_executions(self, memo):
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            setattr(clone, key, [] if key == "executions" else copy.deepcopy(value, memo))
        return clone

    StateMachineInstance.__deepcopy__ = deepcopy_without_executions

    def send_task_failure(self):
        self.stepfunction_backend.send_task_failure(self._get_param("taskToken"), error=self._get_param("error"),
                                                    cause=self._get_param("cause"))
        return sfn_responses.EmptyResult()

    sfn_responses.StepFunctionResponse.send_task_failure = send_task_failure

    original_send_command = SimpleSystemManagerBackend.send_command

    def send_command(self, *args, **kwargs):
        name = kwargs.get("document_name")
        if name not in self._documents:
            raise JsonRESTError("InvalidDocument", f"Document {name} does not exist.")
        ec2 = ec2_backends[self.account_id][self.region_name]
        for instance_id in kwargs.get("instance_ids") or []:
            try:
                instance = ec2.get_instance(instance_id)
            except InvalidInstanceIdError:  # EC2's error; SSM answers with its own
                instance = None
            tags = {(t["key"], t["value"]) for t in instance.get_tags()} if instance else set()
            if instance is None or instance.state != "running" or SSM_MANAGED_TAG not in tags:
                raise JsonRESTError("InvalidInstanceId", f"Instances [[{instance_id}]] not in a "
                                    "valid state for account")
        return original_send_command(self, *args, **kwargs)

    SimpleSystemManagerBackend.send_command = send_command
    original_targets = Command._get_instance_ids_from_targets
    Command._get_instance_ids_from_targets = (
        lambda self: original_targets(self) if self.targets else [])
    for name in EXTRACT_JSON_USERS:
        module = importlib.import_module(name)
        module.extract_json = definite_extract(module.extract_json)
    task._get_boto_service_name = get_boto_service_name
    task._normalise_parameters = normalise_parameters
    task._normalise_response = normalise_response
    aws_sdk.boto_client_for = client_for
